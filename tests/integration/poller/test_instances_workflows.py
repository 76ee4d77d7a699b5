"""The instance registry and saved workflows, over the poller's HTTP API and `amcctl`,
against the simulator (AMC's workflow routes as Amazon publishes them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from amclocal.simulator import RouteKind, SimAccount, SimControl
from services.amcctl import app as amcctl
from shared.contract import RunOptions
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    PollerHarness,
    SettingsFactory,
    completed_events,
    external,
    registration,
    run_for,
    served_poller,
)

API_KEY = "test-api-key-registry"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Poller:
    harness: PollerHarness
    http: httpx.AsyncClient
    url: str


@pytest_asyncio.fixture(loop_scope="session")
async def poller(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> AsyncIterator[Poller]:
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (harness, http, url):
        yield Poller(harness, http, url)


def short_run(account: SimAccount, workflow_id: str | None = "wf-daily", **changes: Any) -> Any:
    """A run that names only the instance: the registry supplies the account ids."""
    fields: dict[str, Any] = {
        "advertiser_id": None,
        "marketplace_id": None,
        "workflow_id": workflow_id,
        **changes,
    }
    return run_for(account, **fields)


async def amcctl_run(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("AMCCTL_POLLER_URL", url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    result = await asyncio.to_thread(CliRunner().invoke, amcctl, list(args))
    return result.exit_code, result.output


async def test_the_registry_adds_shows_changes_and_removes_instances(
    poller: Poller, sim_account: SimAccount
) -> None:
    http = poller.http
    added = await http.post("/instances", json=registration(sim_account, region="EU"))
    assert added.status_code == 201, added.text
    assert added.json()["region"] == "EU"
    again = await http.post("/instances", json=registration(sim_account))
    assert again.status_code == 409
    bad = await http.post("/instances", json=registration(sim_account, region="MARS"))
    assert bad.status_code == 422
    assert "region" in bad.text
    changed = await http.patch(
        f"/instances/{sim_account.instance_id}",
        json={"max_running": 3, "sandbox": True, "max_daily_executions": 100},
    )
    assert (changed.json()["max_running"], changed.json()["sandbox"]) == (3, True)
    assert changed.json()["max_daily_executions"] == 100
    negative = await http.patch(
        f"/instances/{sim_account.instance_id}", json={"max_daily_executions": -1}
    )
    assert negative.status_code == 422
    assert "max_daily_executions" in negative.text
    assert changed.json()["region"] == "EU"
    nulled = await http.patch(f"/instances/{sim_account.instance_id}", json={"region": None})
    assert nulled.status_code == 422
    listed = (await http.get("/instances")).json()["instances"]
    assert [i["instance_id"] for i in listed] == [sim_account.instance_id]
    assert (await http.delete(f"/instances/{sim_account.instance_id}")).status_code == 204
    missing = await http.get(f"/instances/{sim_account.instance_id}")
    assert missing.status_code == 404
    assert "not registered" in missing.text


async def test_a_run_may_name_only_a_registered_instance(
    poller: Poller, simulator: SimControl, sim_account: SimAccount
) -> None:
    unknown = external(short_run(sim_account))
    await poller.harness.send(unknown)
    [failed] = await completed_events(poller.harness, 1)
    assert failed.status == "FAILED"
    assert failed.error is not None
    assert failed.error.code == "UNKNOWN_INSTANCE"
    assert "amcctl instances add" in failed.error.message
    assert not failed.error.retryable

    await poller.http.post("/instances", json=registration(sim_account))
    await poller.harness.send(external(short_run(sim_account)))
    done = await completed_events(poller.harness, 2)
    assert done[1].status == "SUCCEEDED"
    assert len(await simulator.executions()) == 1


async def test_a_sandbox_instances_runs_ask_for_synthetic_data_and_options_pass_through(
    poller: Poller, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.register_instance(
        "amcsandbox1", sim_account.advertiser_id, sim_account.marketplace_id, sandbox=True
    )
    await poller.http.post(
        "/instances", json=registration(sim_account, instance_id="amcsandbox1", sandbox=True)
    )
    options = RunOptions(
        workflow_execution_timeout_s=3600, ignore_data_gaps=True, disable_aggregation_controls=True
    )
    await poller.harness.send(
        external(short_run(sim_account, instance_id="amcsandbox1", options=options))
    )
    [done] = await completed_events(poller.harness, 1)
    assert done.status == "SUCCEEDED"
    [create] = await simulator.requests("amcsandbox1", RouteKind.CREATE)
    assert create.flags == {
        "requireSyntheticData": True,
        "ignoreDataGaps": True,
        "disableAggregationControls": True,
    }
    assert create.timeout_seconds == 3600


async def test_per_instance_limits_override_the_global_ones(
    poller: Poller, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.configure(running_seconds=1.0, pending_seconds=0.0)
    await poller.http.post(
        "/instances", json=registration(sim_account, max_running=2, requests_per_second=3)
    )
    await poller.harness.send(*(external(short_run(sim_account)) for _ in range(6)))
    done = await completed_events(poller.harness, 6)
    assert {e.status for e in done} == {"SUCCEEDED"}
    stats = (await simulator.stats()).instances[sim_account.instance_id]
    assert stats.max_running_seen == 2
    assert stats.throttled == 0
    # 3 a second, not the global 10: counted over 2 s windows of arrival times at AMC, so
    # that the scheduling jitter of a loaded test machine (arrivals a few tens of ms late)
    # cannot make a correctly spaced pair look like a burst.
    calls = sorted(
        r.time
        for r in await simulator.requests(sim_account.instance_id)
        if r.kind in (RouteKind.CREATE, RouteKind.GET, RouteKind.DOWNLOAD_URLS)
    )
    busiest = max(sum(t <= c < t + 2.0 for c in calls) for t in calls)
    assert busiest <= 6, f"{busiest} AMC requests in 2 s"


async def test_workflows_are_pushed_versioned_run_and_deleted(
    poller: Poller,
    simulator: SimControl,
    sim_account: SimAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await poller.http.post("/instances", json=registration(sim_account))
    instance = sim_account.instance_id
    report = tmp_path / "report.sql"
    report.write_text(
        "-- @param campaign STRING ALL\nSELECT campaign, SUM(impressions) FROM dsp_impressions\n"
    )
    push = ("workflows", "push", str(report), "--instance", instance, "--id", "weekly-report")
    code, out = await amcctl_run(monkeypatch, poller.url, *push, "--author", "ana")
    assert code == 0, out
    assert out.strip() == f"create: weekly-report on {instance}, version 1"
    code, out = await amcctl_run(monkeypatch, poller.url, *push, "--author", "ana")
    assert out.strip() == f"unchanged: weekly-report on {instance}, version 1 (unchanged)"
    assert [r.method for r in await simulator.requests(instance, RouteKind.WORKFLOWS)] == [
        "GET",  # plan
        "GET",  # push
        "POST",
        "GET",
        "GET",
    ]

    report.write_text("SELECT campaign, SUM(clicks) FROM dsp_clicks\n")
    code, out = await amcctl_run(monkeypatch, poller.url, *push, "--yes")
    assert code == 0, out
    assert "-SELECT campaign, SUM(impressions) FROM dsp_impressions" in out
    assert "+SELECT campaign, SUM(clicks) FROM dsp_clicks" in out
    assert out.strip().endswith(f"update: weekly-report on {instance}, version 2")

    shown = (await poller.http.get(f"/workflows/{instance}/weekly-report")).json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["versions"][0]["input_parameters"] == [
        {"name": "campaign", "dataType": "STRING", "defaultValue": "ALL"}
    ]
    assert shown["at_amc"]["sqlQuery"] == "SELECT campaign, SUM(clicks) FROM dsp_clicks"
    code, pulled = await amcctl_run(
        monkeypatch,
        poller.url,
        "workflows",
        "pull",
        "--instance",
        instance,
        "--id",
        "weekly-report",
    )
    # The second file named no parameters, so AMC's were kept (issue 20: a push changes
    # only what the file names).
    assert pulled == "-- @param campaign STRING ALL\nSELECT campaign, SUM(clicks) FROM dsp_clicks\n"

    # A run by id records the version that ran; an ad hoc run sends its SQL inline.
    await poller.harness.send(external(short_run(sim_account, "weekly-report")))
    await poller.harness.send(
        external(short_run(sim_account, None, sql_query="SELECT 1 FROM dsp_impressions"))
    )
    done = await completed_events(poller.harness, 2)
    assert {e.status for e in done} == {"SUCCEEDED"}
    rows = {r["workflow_id"]: r for r in await poller.harness.rows()}
    assert rows["weekly-report"]["workflow_version"] == 2
    [adhoc] = [r for w, r in rows.items() if w.startswith("adhoc:")]
    assert adhoc["workflow_version"] is None
    # The API shows the version and filters by workflow (the console's workflow page).
    listed = await poller.http.get(
        "/executions", params={"instance_id": instance, "workflow_id": "weekly-report"}
    )
    assert [e["workflow_version"] for e in listed.json()["executions"]] == [2]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    counted = await poller.http.get(
        "/executions/count", params={"status": "SUCCEEDED", "completed_after": since}
    )
    assert counted.json() == {"count": 2}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    counted = await poller.http.get(
        "/executions/count", params={"status": "SUCCEEDED", "completed_after": later}
    )
    assert counted.json() == {"count": 0}
    naive = await poller.http.get(
        "/executions/count", params={"status": "FAILED", "completed_after": "2024-01-01T00:00"}
    )
    assert naive.status_code == 422
    creates = await simulator.requests(instance, RouteKind.CREATE)
    assert sorted(creates, key=lambda c: c.sql_query or "")[1].sql_query == (
        "SELECT 1 FROM dsp_impressions"
    )
    assert {c.workflow_id for c in creates} == {"weekly-report", None}

    code, out = await amcctl_run(
        monkeypatch,
        poller.url,
        "workflows",
        "delete",
        "--instance",
        instance,
        "--id",
        "weekly-report",
    )
    assert code == 0, out
    listed = (await poller.http.get(f"/workflows/{instance}")).json()["workflows"]
    assert listed == []
    gone = await poller.http.get(f"/workflows/{instance}/weekly-report")
    assert gone.json()["at_amc"] is None  # its versions remain as history


async def test_workflow_files_with_bad_parameters_are_refused_naming_the_line(
    poller: Poller, sim_account: SimAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "bad.sql"
    report.write_text("SELECT 1\n-- @param n NUMBER\n")
    code, out = await amcctl_run(
        monkeypatch,
        poller.url,
        *("workflows", "push", str(report), "--instance", "i", "--id", "w"),
    )
    assert code == 1
    assert "line 2" in out
    assert "'NUMBER' is not one of AMC's data types" in out
    unmanaged = await poller.http.get("/workflows/nowhere")
    assert unmanaged.status_code == 409
    assert "amcctl instances add nowhere" in json.loads(unmanaged.text)["detail"]


async def test_discovery_lists_what_the_users_token_sees_and_registers_it(
    poller: Poller, simulator: SimControl, sim_account: SimAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    await simulator.register_instance(
        "amcsandbox2", sim_account.advertiser_id, sim_account.marketplace_id, sandbox=True
    )
    await simulator.register_instance(
        "amcprivate2", "ENTITYOTHER", sim_account.marketplace_id, allowed_users=["someone-else"]
    )
    look = ("instances", "discover", "--user", sim_account.user_id)
    code, out = await amcctl_run(monkeypatch, poller.url, *look)
    assert code == 0, out
    lines = out.splitlines()
    listed = {line.split()[0]: line for line in lines[:-1]}
    assert sorted(listed) == sorted([sim_account.instance_id, "amcsandbox2"])
    assert "NA sandbox" in listed["amcsandbox2"]
    assert "not registered" in listed[sim_account.instance_id]
    assert lines[-1] == f"2 instance(s) visible to {sim_account.user_id}"

    code, out = await amcctl_run(monkeypatch, poller.url, *look, "--register", "--json")
    assert code == 0, out
    found = json.loads(out)
    assert sorted(found["newly_registered"]) == sorted([sim_account.instance_id, "amcsandbox2"])
    sandbox = (await poller.http.get("/instances/amcsandbox2")).json()
    assert (sandbox["sandbox"], sandbox["region"], sandbox["user_id"]) == (
        True,
        "NA",
        sim_account.user_id,
    )
    # Registered, a run names only the instance, and the sandbox rule holds at AMC.
    await poller.harness.send(external(short_run(sim_account, instance_id="amcsandbox2")))
    [done] = await completed_events(poller.harness, 1)
    assert done.status == "SUCCEEDED"
    admin = await simulator.requests(kind=RouteKind.ADMIN)
    assert [r.path for r in admin] == ["/amc/accounts", "/amc/instances"] * 2
