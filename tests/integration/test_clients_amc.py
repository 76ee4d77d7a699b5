"""AmcClient against the simulator over real HTTP: lifecycle, limits, errors, downloads."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl, WorkflowBehavior
from shared.clients import (
    AmcAccount,
    AmcClient,
    AmcStatus,
    ApiError,
    ClientRequestError,
    ExecutionInfo,
    ExecutionRequest,
    LwaClient,
    RateLimitedError,
    ResultsExpiredError,
    ServerError,
    TransportError,
    UnauthorizedError,
)

WEEK = ExecutionRequest(
    workflow_id="weekly_reach",
    time_window_start=datetime(2024, 1, 1),
    time_window_end=datetime(2024, 1, 8),
)


@dataclass(frozen=True)
class Amc:
    client: AmcClient
    token: str
    account: AmcAccount

    async def wait_for_terminal(self, execution_id: str) -> ExecutionInfo:
        """Poll every 50 ms, backing off on 429 (AMC gives no hint of when it will end)."""
        async with asyncio.timeout(5.0):
            while True:
                try:
                    info = await self.client.get_execution(self.token, self.account, execution_id)
                except RateLimitedError as error:
                    await asyncio.sleep(error.retry_after)
                    continue
                if info.status.is_terminal:
                    return info
                await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="session")
async def amc(simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient) -> Amc:
    lwa = LwaClient(
        simulator.base_url, sim_account.client_id, sim_account.client_secret, http=sim_http
    )
    tokens = await lwa.refresh(sim_account.refresh_token)
    return Amc(
        AmcClient(simulator.base_url, sim_account.client_id, http=sim_http, timeout=2.0),
        tokens.access_token.get_secret_value(),
        AmcAccount(sim_account.instance_id, sim_account.advertiser_id, sim_account.marketplace_id),
    )


async def test_execution_runs_to_succeeded_and_its_result_streams(
    amc: Amc, simulator: SimControl
) -> None:
    await simulator.configure(result_rows=2500)

    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    assert created.status is AmcStatus.PENDING
    assert created.workflow_id == "weekly_reach"
    # Echoed as AMC does: UTC with 'Z', and the wall time and zone as sent.
    assert created.time_window_start == datetime(2024, 1, 1, tzinfo=UTC)
    assert created.time_window_end == datetime(2024, 1, 8, tzinfo=UTC)
    assert created.time_window_start_original == "2024-01-01T00:00:00"
    assert created.time_window_time_zone_original == "UTC"
    assert created.create_time is not None
    # As in every Amazon sample: an hour before createTime, so no polling hint.
    assert created.wait_until == created.create_time - timedelta(hours=1)

    done = await amc.wait_for_terminal(created.workflow_execution_id)
    assert done.status is AmcStatus.SUCCEEDED
    assert done.error_message is None

    urls = await amc.client.download_urls(amc.token, amc.account, done.workflow_execution_id)
    [url] = urls.results
    assert len(urls.metadata) == 1
    async with amc.client.stream_download(url, chunk_size=4096) as body:
        chunks = [chunk async for chunk in body]
    assert len(chunks) > 1
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len(rows) == 2500
    assert {row["workflow_id"] for row in rows} == {"weekly_reach"}


async def test_status_goes_through_running(amc: Amc, simulator: SimControl) -> None:
    await simulator.configure(pending_seconds=0.0, running_seconds=5.0)
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    info = await amc.client.get_execution(amc.token, amc.account, created.workflow_execution_id)
    assert info.status is AmcStatus.RUNNING


async def test_failing_workflow_ends_failed_with_amc_reason(
    amc: Amc, simulator: SimControl
) -> None:
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="broken", fail=True, failure_reason="Column x not found")
    )
    created = await amc.client.create_execution(
        amc.token, amc.account, dataclasses.replace(WEEK, workflow_id="broken")
    )
    done = await amc.wait_for_terminal(created.workflow_execution_id)
    assert done.status is AmcStatus.FAILED
    assert done.error_message == "Column x not found"
    with pytest.raises(ClientRequestError, match="unavailable for download"):
        await amc.client.download_urls(amc.token, amc.account, done.workflow_execution_id)


async def test_transient_failure_clears_after_n_attempts(amc: Amc, simulator: SimControl) -> None:
    await simulator.configure(rate_limit_per_second=0)
    await simulator.set_workflow(WorkflowBehavior(workflow_id="weekly_reach", fail_attempts=2))
    outcomes = []
    for _ in range(3):
        created = await amc.client.create_execution(amc.token, amc.account, WEEK)
        outcomes.append((await amc.wait_for_terminal(created.workflow_execution_id)).status)
    assert outcomes == [AmcStatus.FAILED, AmcStatus.FAILED, AmcStatus.SUCCEEDED]


async def test_cancel_stops_an_execution(amc: Amc, simulator: SimControl) -> None:
    await simulator.configure(running_seconds=5.0)
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)

    await amc.client.cancel_execution(amc.token, amc.account, created.workflow_execution_id)

    info = await amc.client.get_execution(amc.token, amc.account, created.workflow_execution_id)
    assert info.status is AmcStatus.CANCELLED
    with pytest.raises(ClientRequestError, match="CANCELLED"):
        await amc.client.cancel_execution(amc.token, amc.account, created.workflow_execution_id)
    cancels = await simulator.requests(amc.account.instance_id, RouteKind.CANCEL)
    assert [(r.method, r.status) for r in cancels] == [("PUT", 200), ("PUT", 400)]


async def test_there_is_no_delete_on_an_execution(
    amc: Amc, simulator: SimControl, sim_http: httpx.AsyncClient
) -> None:
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    url = (
        f"{simulator.base_url}/amc/reporting/{amc.account.instance_id}"
        f"/workflowExecutions/{created.workflow_execution_id}"
    )
    answer = await sim_http.delete(url, headers={"Authorization": f"Bearer {amc.token}"})
    assert answer.status_code == 405
    assert set(answer.json()) == {"code", "details"}
    info = await amc.client.get_execution(amc.token, amc.account, created.workflow_execution_id)
    assert info.status is not AmcStatus.CANCELLED


async def test_at_most_ten_run_at_once_per_instance(amc: Amc, simulator: SimControl) -> None:
    # Long enough runs that all 15 are created before the first ends, even on a loaded
    # machine (at 0.4 s, a busy worker saw two finish while it was still creating).
    await simulator.configure(rate_limit_per_second=0, pending_seconds=0.0, running_seconds=2.0)

    created = [await amc.client.create_execution(amc.token, amc.account, WEEK) for _ in range(15)]
    states = [e.status.value for e in await simulator.executions(amc.account.instance_id)]
    assert states.count("RUNNING") == 10
    assert states.count("PENDING") == 5

    for execution in created:
        done = await amc.wait_for_terminal(execution.workflow_execution_id)
        assert done.status is AmcStatus.SUCCEEDED
    views = {v.execution_id: v for v in await simulator.executions()}
    # FIFO: the i-th one that waited starts the moment the i-th running one finishes.
    for first, waited in zip(created[:5], created[10:], strict=True):
        ended = views[first.workflow_execution_id].end_time
        assert ended is not None
        assert views[waited.workflow_execution_id].start_time == pytest.approx(ended, abs=5e-3)
    stats = (await simulator.stats()).instances[amc.account.instance_id]
    assert stats.max_running_seen == 10
    assert stats.executions_created == 15


async def test_list_follows_pages_and_filters_by_creation_time(
    amc: Amc, simulator: SimControl
) -> None:
    await simulator.configure(page_size=2, rate_limit_per_second=0, running_seconds=30.0)
    early = await amc.client.create_execution(amc.token, amc.account, WEEK)
    # AMC's creation times and filters have whole seconds: start the window at the next one.
    await asyncio.sleep(1.0 - datetime.now(UTC).microsecond / 1e6 + 0.01)
    since = datetime.now(UTC)
    later = [await amc.client.create_execution(amc.token, amc.account, WEEK) for _ in range(5)]
    until = datetime.now(UTC) + timedelta(seconds=1)
    # Listed all the same: AMC leaves CANCELLED out unless includeCancelled=true.
    await amc.client.cancel_execution(amc.token, amc.account, later[2].workflow_execution_id)

    listed = await amc.client.list_executions(amc.token, amc.account, since, until)

    assert [e.workflow_execution_id for e in listed] == [e.workflow_execution_id for e in later]
    assert early.workflow_execution_id not in {e.workflow_execution_id for e in listed}
    assert listed[2].status is AmcStatus.CANCELLED
    assert len(await simulator.requests(amc.account.instance_id, RouteKind.LIST)) == 3


async def test_purged_results_raise_results_expired(amc: Amc, simulator: SimControl) -> None:
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    await amc.wait_for_terminal(created.workflow_execution_id)
    urls = await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)
    [url] = urls.results

    await simulator.expire_results(created.workflow_execution_id)

    with pytest.raises(ResultsExpiredError) as caught:
        async with amc.client.stream_download(url):
            pass
    assert caught.value.status == 404
    signature = url.split("X-Amz-Signature=")[1]
    assert signature not in str(caught.value)
    with pytest.raises(ClientRequestError, match="unavailable for download"):
        await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)


async def test_a_result_url_lives_ten_minutes_then_storage_says_expired(
    amc: Amc, simulator: SimControl
) -> None:
    # X-Amz-Date has whole seconds, so a URL lives ttl less up to a second.
    await simulator.configure(url_ttl_seconds=2.0)
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    await amc.wait_for_terminal(created.workflow_execution_id)
    [url] = (
        await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)
    ).results
    assert "X-Amz-Expires=2&" in url
    await asyncio.sleep(3.05)

    with pytest.raises(ResultsExpiredError, match="Request has expired") as caught:
        async with amc.client.stream_download(url):
            pass
    assert caught.value.status == 403
    [fresh] = (
        await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)
    ).results
    async with amc.client.stream_download(fresh) as body:
        assert b"row_id" in b"".join([chunk async for chunk in body])


async def test_large_results_come_in_several_files(amc: Amc, simulator: SimControl) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="weekly_reach", rows=10, files=3))
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    await amc.wait_for_terminal(created.workflow_execution_id)
    urls = await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)
    assert len(urls.results) == 3
    row_ids: list[str] = []
    for url in urls.results:
        async with amc.client.stream_download(url) as body:
            text = b"".join([chunk async for chunk in body]).decode()
        row_ids += [row["row_id"] for row in csv.DictReader(io.StringIO(text))]
    assert sorted(row_ids, key=int) == [str(i) for i in range(10)]


async def test_tampered_result_url_is_refused(amc: Amc) -> None:
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    await amc.wait_for_terminal(created.workflow_execution_id)
    [url] = (
        await amc.client.download_urls(amc.token, amc.account, created.workflow_execution_id)
    ).results
    with pytest.raises(ResultsExpiredError) as caught:
        async with amc.client.stream_download(url + "x"):
            pass
    assert caught.value.status == 403


async def test_missing_unknown_and_expired_tokens_are_unauthorized(
    amc: Amc, simulator: SimControl, sim_account: SimAccount
) -> None:
    with pytest.raises(UnauthorizedError, match="no access token"):
        await amc.client.create_execution("", amc.account, WEEK)
    with pytest.raises(UnauthorizedError, match="invalid") as caught:
        await amc.client.create_execution("Atza|made-up", amc.account, WEEK)
    assert caught.value.status == 401

    assert await simulator.expire_access_tokens(sim_account.user_id) == 1
    with pytest.raises(UnauthorizedError, match="expired"):
        await amc.client.get_execution(amc.token, amc.account, "any")


async def test_access_token_lapses_after_its_lifetime(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    await simulator.configure(access_token_ttl_seconds=0.2)
    lwa = LwaClient(
        simulator.base_url, sim_account.client_id, sim_account.client_secret, http=sim_http
    )
    tokens = await lwa.refresh(sim_account.refresh_token)
    assert tokens.expires_in == pytest.approx(0.2)
    client = AmcClient(simulator.base_url, sim_account.client_id, http=sim_http)
    account = AmcAccount(
        sim_account.instance_id, sim_account.advertiser_id, sim_account.marketplace_id
    )
    token = tokens.access_token.get_secret_value()
    await client.create_execution(token, account, WEEK)
    await asyncio.sleep(0.3)
    with pytest.raises(UnauthorizedError, match="expired"):
        await client.create_execution(token, account, WEEK)


async def test_wrong_instance_advertiser_or_body_are_client_errors(amc: Amc) -> None:
    unknown = AmcAccount("nope", amc.account.advertiser_id, amc.account.marketplace_id)
    with pytest.raises(ClientRequestError) as caught:
        await amc.client.get_execution(amc.token, unknown, "any")
    assert caught.value.status == 404

    stranger = AmcAccount(amc.account.instance_id, "OTHER", amc.account.marketplace_id)
    with pytest.raises(ClientRequestError) as caught:
        await amc.client.get_execution(amc.token, stranger, "any")
    assert caught.value.status == 403

    no_end = ExecutionRequest(workflow_id="w", time_window_start=datetime(2024, 1, 1))
    with pytest.raises(ClientRequestError, match="timeWindowEnd is required") as caught:
        await amc.client.create_execution(amc.token, amc.account, no_end)
    assert caught.value.status == 400

    backwards = ExecutionRequest(
        workflow_id="w",
        time_window_start=datetime(2024, 1, 8),
        time_window_end=datetime(2024, 1, 1),
    )
    with pytest.raises(ClientRequestError, match="must be after"):
        await amc.client.create_execution(amc.token, amc.account, backwards)


async def test_over_ten_requests_a_second_is_throttled_with_retry_after(
    amc: Amc, simulator: SimControl
) -> None:
    created = await amc.client.create_execution(amc.token, amc.account, WEEK)
    execution_id = created.workflow_execution_id
    for _ in range(9):
        await amc.client.get_execution(amc.token, amc.account, execution_id)

    with pytest.raises(RateLimitedError) as caught:
        await amc.client.get_execution(amc.token, amc.account, execution_id)

    assert caught.value.status == 429
    assert caught.value.retry_after == 1.0
    await asyncio.sleep(caught.value.retry_after)
    await amc.client.get_execution(amc.token, amc.account, execution_id)
    stats = (await simulator.stats()).instances[amc.account.instance_id]
    assert stats.throttled == 1
    assert stats.max_rps == 11


async def test_injected_5xx_is_a_server_error(amc: Amc, simulator: SimControl) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.CREATE], fail_next=2))

    for _ in range(2):
        with pytest.raises(ServerError) as caught:
            await amc.client.create_execution(amc.token, amc.account, WEEK)
        assert caught.value.status == 503
    assert (await amc.client.create_execution(amc.token, amc.account, WEEK)).status


async def test_slow_amc_times_out_as_a_transport_error(
    amc: Amc, simulator: SimControl, sim_http: httpx.AsyncClient
) -> None:
    await simulator.add_fault(FaultRule(latency_ms=500))
    impatient = AmcClient(simulator.base_url, "any", http=sim_http, timeout=0.1)
    with pytest.raises(TransportError, match="timed out") as caught:
        await impatient.get_execution(amc.token, amc.account, "any")
    assert amc.token not in str(caught.value)


async def test_no_secret_in_errors_or_request_log(
    amc: Amc, simulator: SimControl, sim_account: SimAccount
) -> None:
    errors: list[ApiError] = []
    await simulator.add_fault(FaultRule(kinds=[RouteKind.GET], fail_next=1))
    for call in (
        amc.client.get_execution(amc.token, amc.account, "any"),
        amc.client.get_execution(amc.token, amc.account, "unknown"),
        amc.client.get_execution(amc.token, AmcAccount("nope", "a", "m"), "any"),
        amc.client.create_execution(amc.token, amc.account, ExecutionRequest(workflow_id="")),
    ):
        with pytest.raises(ApiError) as caught:
            await call
        errors.append(caught.value)
    await simulator.revoke_user(sim_account.user_id)
    with pytest.raises(UnauthorizedError) as revoked:
        await amc.client.get_execution(amc.token, amc.account, "any")
    errors.append(revoked.value)

    secrets = (amc.token, sim_account.refresh_token, sim_account.client_secret)
    log = "".join(r.model_dump_json() for r in await simulator.requests())
    for secret in secrets:
        assert secret not in log
        for error in errors:
            assert secret not in str(error)
            assert secret not in repr(error)
