"""The simulator's own contract: control API, request log, stats, determinism, raw AMC answers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl

ROOT = Path(__file__).resolve().parents[2]
CREATE_BODY = {
    "workflowId": "reach",
    "timeWindowType": "EXPLICIT",
    "timeWindowStart": "2024-01-01T00:00:00",
    "timeWindowEnd": "2024-01-08T00:00:00",
}


async def _access_token(http: httpx.AsyncClient, base_url: str, account: SimAccount) -> str:
    response = await http.post(
        f"{base_url}/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": account.refresh_token,
            "client_id": account.client_id,
            "client_secret": account.client_secret,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _headers(account: SimAccount, token: str | None) -> dict[str, str]:
    headers = {
        "Amazon-Advertising-API-ClientId": account.client_id,
        "Amazon-Advertising-API-AdvertiserId": account.advertiser_id,
        "Amazon-Advertising-API-MarketplaceId": account.marketplace_id,
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _executions_url(base_url: str, instance_id: str) -> str:
    return f"{base_url}/amc/reporting/{instance_id}/workflowExecutions"


async def test_missing_bearer_token_is_401_with_a_message(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    response = await sim_http.post(
        _executions_url(simulator.base_url, sim_account.instance_id),
        json=CREATE_BODY,
        headers=_headers(sim_account, None),
    )
    assert response.status_code == 401
    assert response.json() == {"code": "401", "details": "Missing bearer access token"}


async def test_a_workflows_route_refuses_an_unknown_token_in_the_workflows_media_type(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    """A token this AMC never issued (a restarted simulator that kept nothing, issue 21) is a
    401 in the workflows resource's own media type, which the contract guard accepts (the
    fixture fails the test on any violation)."""
    response = await sim_http.get(
        f"{simulator.base_url}/amc/reporting/{sim_account.instance_id}/workflows/reach",
        headers=_headers(sim_account, "Atza|never-issued"),
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/vnd.amcworkflows.v1+json")
    assert response.json() == {"code": "401", "details": "The access token is invalid"}


async def test_missing_advertiser_header_is_400(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    headers = _headers(sim_account, token)
    del headers["Amazon-Advertising-API-AdvertiserId"]
    response = await sim_http.get(
        _executions_url(simulator.base_url, sim_account.instance_id), headers=headers
    )
    assert response.status_code == 400
    assert "AdvertiserId" in response.json()["details"]


async def test_instance_restricted_to_other_users_is_401_not_authorized_to_access_scope(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    await simulator.register_instance(
        "private", sim_account.advertiser_id, sim_account.marketplace_id, ["someone-else"]
    )
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    response = await sim_http.get(
        _executions_url(simulator.base_url, "private") + "?workflowId=w",
        headers=_headers(sim_account, token),
    )
    # errors.md: "401 - Not authorized to access scope".
    assert response.status_code == 401
    assert response.json()["details"] == "Not authorized to access scope"


_CREATE = "POST", ""
_LIST = "GET", ""


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "names"),
    [
        # Fields AMC's CreateWorkflowExecutionRequest does not have.
        (*_CREATE, {**CREATE_BODY, "outputFormat": "CSV"}, {}, 400, "outputFormat"),
        # Window bounds are yyyy-MM-dd'T'HH:mm:ss, no offset, no fraction.
        (
            *_CREATE,
            {**CREATE_BODY, "timeWindowStart": "2024-01-01T00:00:00Z"},
            {},
            400,
            "timeWindowStart",
        ),
        (*_CREATE, {**CREATE_BODY, "timeWindowStart": "2024-01-01"}, {}, 400, "timeWindowStart"),
        (*_CREATE, {**CREATE_BODY, "parameterValues": {"n": 5}}, {}, 400, "parameterValues"),
        (
            *_CREATE,
            {**CREATE_BODY, "timeWindowTimeZone": "New York"},
            {},
            400,
            "timeWindowTimeZone",
        ),
        (
            *_CREATE,
            {**CREATE_BODY, "workflowExecutionTimeoutSeconds": 60},
            {},
            400,
            "workflowExecutionTimeoutSeconds",
        ),
        (*_CREATE, {**CREATE_BODY, "workflow": {"sqlQuery": "SELECT 1"}}, {}, 400, "sqlQuery"),
        (*_CREATE, CREATE_BODY, {"Content-Type": "text/plain"}, 415, "Content-Type"),
        (*_CREATE, CREATE_BODY, {"Accept": "text/csv"}, 406, "Accept"),
        # List filters: the documented format, and one of minCreationTime or workflowId.
        ("GET", "?minCreationTime=2024-01-01T00:00:00.000Z", None, {}, 400, "minCreationTime"),
        ("GET", "?maxCreationTime=2024-01-01T00:00:00", None, {}, 400, "minCreationTime"),
        ("GET", "?workflowId=w&timeZone=Mars/Base", None, {}, 400, "timeZone"),
        ("GET", "?workflowId=w&limit=101", None, {}, 400, "limit"),
        # No DELETE: cancel is PUT {"status": "CANCELLED"}; no such route at all: 404.
        ("DELETE", "/some-id", None, {}, 405, "Method Not Allowed"),
        ("PUT", "/some-id", {"status": "CANCELLED"}, {}, 404, "some-id"),
        ("GET", "/some-id/results", None, {}, 404, "Not Found"),
    ],
)
async def test_refuses_what_amc_refuses_in_amc_error_shape(
    simulator: SimControl,
    sim_account: SimAccount,
    sim_http: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    status: int,
    names: str,
) -> None:
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    url = _executions_url(simulator.base_url, sim_account.instance_id) + path
    response = await sim_http.request(
        method, url, json=body, headers={**_headers(sim_account, token), **headers}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/vnd.amcworkflowexecutions.v1+json"
    answer = response.json()
    assert set(answer) == {"code", "details"}
    assert names in answer["details"]
    assert await simulator.executions() == []


async def test_request_log_records_creates_without_secrets(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    url = _executions_url(simulator.base_url, sim_account.instance_id)
    created = await sim_http.post(url, json=CREATE_BODY, headers=_headers(sim_account, token))
    execution_id = created.json()["workflowExecutionId"]
    await sim_http.get(f"{url}/{execution_id}", headers=_headers(sim_account, token))
    await simulator.stats()  # control calls are not logged

    records = await simulator.requests()
    assert [(r.kind, r.status) for r in records] == [
        (RouteKind.TOKEN, 200),
        (RouteKind.CREATE, 200),
        (RouteKind.GET, 200),
    ]
    [create] = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert create.workflow_id == "reach"
    assert (create.time_window_start, create.time_window_end) == (
        "2024-01-01T00:00:00",
        "2024-01-08T00:00:00",
    )
    assert create.execution_id == execution_id
    assert create.path == f"/amc/reporting/{sim_account.instance_id}/workflowExecutions"
    log = "".join(r.model_dump_json() for r in records)
    assert token not in log
    assert sim_account.refresh_token not in log
    assert sim_account.client_secret not in log


async def test_revoked_access_tokens_are_refused_and_named_by_serial_in_the_log(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    url = _executions_url(simulator.base_url, sim_account.instance_id)
    first = await _access_token(sim_http, simulator.base_url, sim_account)

    async def create(token: str) -> httpx.Response:
        return await sim_http.post(url, json=CREATE_BODY, headers=_headers(sim_account, token))

    assert (await create(first)).status_code == 200
    assert await simulator.revoke_access_tokens(sim_account.user_id) == 1
    refused = await create(first)
    assert refused.status_code == 401
    assert refused.json() == {"code": "401", "details": "The access token is invalid"}
    # The grant itself stands: the refresh token still gets a working access token.
    second = await _access_token(sim_http, simulator.base_url, sim_account)
    assert (await create(second)).status_code == 200
    listed = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert [(r.status, r.access_token_serial) for r in listed] == [(200, 1), (401, 1), (200, 2)]
    with pytest.raises(httpx.HTTPStatusError):
        await simulator.revoke_access_tokens("nobody")


async def test_stats_count_creates_and_the_busiest_second_per_instance(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    await simulator.register_instance(
        "second", sim_account.advertiser_id, sim_account.marketplace_id
    )
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    headers = _headers(sim_account, token)
    for _ in range(3):
        await sim_http.post(
            _executions_url(simulator.base_url, sim_account.instance_id),
            json=CREATE_BODY,
            headers=headers,
        )
    await sim_http.post(
        _executions_url(simulator.base_url, "second"), json=CREATE_BODY, headers=headers
    )
    await asyncio.sleep(1.05)
    await sim_http.get(_executions_url(simulator.base_url, "second"), headers=headers)

    stats = (await simulator.stats()).instances
    first = stats[sim_account.instance_id]
    assert (first.executions_created, first.requests, first.max_rps) == (3, 3, 3)
    second = stats["second"]
    assert (second.executions_created, second.requests, second.max_rps) == (1, 2, 1)
    assert (first.max_running_seen, second.max_running_seen) == (3, 1)


async def test_same_seed_gives_same_ids_and_same_injected_failures(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    async def run_once() -> list[int | str]:
        account = await simulator.provision()
        await simulator.configure(rate_limit_per_second=0)
        await simulator.add_fault(FaultRule(kinds=[RouteKind.CREATE], error_rate=0.5))
        token = await _access_token(sim_http, simulator.base_url, account)
        outcome: list[int | str] = []
        for _ in range(12):
            response = await sim_http.post(
                _executions_url(simulator.base_url, account.instance_id),
                json=CREATE_BODY,
                headers=_headers(account, token),
            )
            outcome.append(response.json().get("workflowExecutionId", response.status_code))
        return outcome

    first = await run_once()
    await simulator.reset()
    second = await run_once()

    assert first == second
    assert 503 in first
    assert any(isinstance(item, str) for item in first)


async def test_reset_forgets_everything_and_restores_config(simulator: SimControl) -> None:
    await simulator.provision()
    await simulator.configure(max_running=3)
    await simulator.add_fault(FaultRule(latency_ms=5))

    await simulator.reset()

    assert (await simulator.config()).max_running == 10
    assert await simulator.executions() == []
    assert (await simulator.stats()).instances == {}


async def test_invalid_config_is_refused_and_changes_nothing(simulator: SimControl) -> None:
    for bad in ({"max_running": 0}, {"no_such_knob": 1}):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await simulator.configure(**bad)
        assert caught.value.response.status_code == 422
    assert (await simulator.config()).max_running == 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _simulator_process(port: int, *args: str) -> asyncio.subprocess.Process:
    """The simulator as `python -m amclocal.simulator` runs it, once it answers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "deploy" / "local")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "amclocal.simulator", "--port", str(port), *args),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the simulator exited during start"
            try:
                health = await http.get(f"http://127.0.0.1:{port}/_sim/healthz")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            assert health.json() == {"ok": True, "pid": process.pid}
            return process


async def test_runs_as_a_process_from_the_command_line() -> None:
    port = _free_port()
    process = await _simulator_process(port, "--seed", "7")
    try:
        async with httpx.AsyncClient() as http:
            config = (await http.get(f"http://127.0.0.1:{port}/_sim/config")).json()
            assert config["seed"] == 7
    finally:
        process.terminate()
        await process.wait()


async def test_an_execution_can_be_rejected_while_it_may_still_run(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    # REJECTED as Amazon's own client reads it (insights-on-aws workflow_manager_services.py):
    # an end, with statusReason; the DOWNLOAD channel then never becomes AVAILABLE.
    await simulator.configure(pending_seconds=600)
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    url = _executions_url(simulator.base_url, sim_account.instance_id)
    created = await sim_http.post(url, json=CREATE_BODY, headers=_headers(sim_account, token))
    execution_id = created.json()["workflowExecutionId"]
    await simulator.reject_execution(execution_id, "Not allowed on this instance")
    answer = await sim_http.get(f"{url}/{execution_id}", headers=_headers(sim_account, token))
    body = answer.json()
    assert (body["status"], body["statusReason"]) == ("REJECTED", "Not allowed on this instance")
    [download] = body["outputChannels"]
    assert download["channel"] == {"type": "DOWNLOAD"}
    assert download["status"] == "UNAVAILABLE"
    refused = await sim_http.get(
        f"{url}/{execution_id}/downloadUrls", headers=_headers(sim_account, token)
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "400"

    again = await sim_http.post(
        f"{simulator.base_url}/_sim/amc/executions/{execution_id}/reject", json={}
    )
    assert again.status_code == 409
    assert "REJECTED" in again.text
    unknown = await sim_http.post(f"{simulator.base_url}/_sim/amc/executions/nope/reject", json={})
    assert unknown.status_code == 404


async def test_an_injected_429_carries_retry_after_only_when_asked(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    token = await _access_token(sim_http, simulator.base_url, sim_account)
    url = _executions_url(simulator.base_url, sim_account.instance_id)
    await simulator.add_fault(FaultRule(kinds=[RouteKind.LIST], fail_next=1, status=429))
    await simulator.add_fault(
        FaultRule(kinds=[RouteKind.LIST], fail_next=1, status=429, retry_after_s=3)
    )
    bare = await sim_http.get(url, headers=_headers(sim_account, token))
    named = await sim_http.get(url, headers=_headers(sim_account, token))
    assert (bare.status_code, named.status_code) == (429, 429)
    assert "retry-after" not in bare.headers
    assert named.headers["retry-after"] == "3"
    assert bare.json() == {"code": "429", "details": bare.json()["details"]}
    with pytest.raises(ValueError, match="429 or a 5xx"):
        FaultRule(status=450)


async def test_state_file_keeps_tokens_workflows_and_executions_across_a_kill(
    tmp_path: Path,
) -> None:
    """What the product was told before the simulator was killed (SIGKILL: no shutdown code
    runs) is still true after a restart on the same file: its access token works, its
    workflow is there, its execution goes on and finishes."""
    port, state = _free_port(), tmp_path / "sim-state.json"
    base = f"http://127.0.0.1:{port}"
    process = await _simulator_process(port, "--state-file", str(state))
    try:
        control = SimControl(base)
        account = await control.provision()
        await control.configure(pending_seconds=0, running_seconds=1.0)
        async with httpx.AsyncClient() as http:
            token = await _access_token(http, base, account)
            headers = _headers(account, token)
            workflow = {"workflowId": "reach", "sqlQuery": "SELECT 1"}
            pushed = await http.post(
                f"{base}/amc/reporting/{account.instance_id}/workflows",
                json=workflow,
                headers=headers,
            )
            assert pushed.status_code == 200, pushed.text
            created = await http.post(
                _executions_url(base, account.instance_id), json=CREATE_BODY, headers=headers
            )
            assert created.status_code == 200, created.text
            execution_id = created.json()["workflowExecutionId"]
        process.kill()
        await process.wait()
        assert state.stat().st_mode & 0o077 == 0, "tokens are readable by their owner only"

        # The config is the command line's again (pending 2 s, running 10 s): the kept
        # execution keeps the durations it was created with.
        process = await _simulator_process(port, "--state-file", str(state))
        async with httpx.AsyncClient(headers=headers) as http:
            got = await http.get(f"{base}/amc/reporting/{account.instance_id}/workflows/reach")
            assert got.status_code == 200, got.text
            assert got.json()["sqlQuery"] == "SELECT 1"
            url = f"{_executions_url(base, account.instance_id)}/{execution_id}"
            async with asyncio.timeout(30):
                while (answer := await http.get(url)).json()["status"] != "SUCCEEDED":
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["status"] in ("PENDING", "RUNNING"), answer.text
                    await asyncio.sleep(0.2)
            # A new execution gets an id of its own: the seed must not replay the kept ones'.
            again = await http.post(_executions_url(base, account.instance_id), json=CREATE_BODY)
            assert again.status_code == 200, again.text
            assert again.json()["workflowExecutionId"] != execution_id
            assert (await http.get(url)).json()["status"] == "SUCCEEDED"
            assert (await SimControl(base).contract_violations()) == []
    finally:
        process.terminate()
        await process.wait()


async def test_unreadable_state_file_stops_the_start_with_its_name(tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    state.write_text("{not json")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "deploy" / "local")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "amclocal.simulator", "--port", str(_free_port())),
        *("--state-file", str(state)),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert f"state file {state} cannot be read" in err.decode()
