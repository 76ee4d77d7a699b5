"""The poller against AMC as Amazon publishes it (docs/amc): one test per behaviour that was
right only against our old, invented simulator.

Each simulator answer and each accepted request here is also checked against the transcribed
OpenAPI document by the simulator's contract guard (see tests/simfixtures.py).
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl, WorkflowBehavior
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    SettingsFactory,
    TokenDesk,
    completed_events,
    eventually,
    external,
    run_for,
    served_poller,
    started,
)

API_KEY = "test-api-key-amc-api"
NEW_YORK = ZoneInfo("America/New_York")


def _amc_status(simulator: SimControl, amc_id: str, *wanted: str) -> Any:
    async def check() -> bool:
        views = {v.execution_id: v for v in await simulator.executions()}
        return amc_id in views and views[amc_id].status.value in wanted

    return check


async def _amc_id(poller: PollerHarness, request_id: str) -> str:
    async def submitted() -> str | None:
        rows = [r for r in await poller.rows() if r["origin_id"] == request_id]
        return rows[0]["amc_execution_id"] if rows and rows[0]["amc_execution_id"] else None

    found: str = await eventually(submitted, what=f"{request_id} submitted to AMC")
    return found


async def test_cancel_reaches_amc_as_put_and_frees_the_slot(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    # One slot at AMC: the second execution can only start once the first lets go of it.
    await simulator.configure(max_running=1, pending_seconds=0.0)
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-long", running_seconds=600))
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-short", running_seconds=0.3))
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        long, short = (
            external(run_for(sim_account, "wf-long")),
            external(run_for(sim_account, "wf-short")),
        )
        await poller.send(long)
        long_id = await _amc_id(poller, long.request_id)
        await eventually(_amc_status(simulator, long_id, "RUNNING"), what="long one RUNNING")
        await poller.send(short)
        short_id = await _amc_id(poller, short.request_id)
        [row] = [r for r in await poller.rows() if r["origin_id"] == long.request_id]

        answer = await http.post(f"/executions/{row['execution_id']}/cancel")
        assert answer.status_code == 202

        done = {e.origin.id: e for e in await completed_events(poller, 2)}
    assert done[long.request_id].status == "CANCELLED"
    assert done[short.request_id].status == "SUCCEEDED"
    views = {v.execution_id: v for v in await simulator.executions()}
    assert views[long_id].status.value == "CANCELLED"
    # The slot the cancel freed is what let the short one run.
    short_started, long_ended = views[short_id].start_time, views[long_id].end_time
    assert short_started is not None
    assert long_ended is not None
    # (Each execution's wall times are derived on its own: allow a millisecond.)
    assert short_started >= long_ended - 1e-3
    cancels = await simulator.requests(sim_account.instance_id, RouteKind.CANCEL)
    assert [(c.method, c.status, c.execution_id) for c in cancels] == [("PUT", 200, long_id)]


async def test_a_refused_cancel_is_read_back_and_retried_not_taken_for_finished(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-long", running_seconds=600))
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        request = external(run_for(sim_account, "wf-long"))
        await poller.send(request)
        amc_id = await _amc_id(poller, request.request_id)
        await eventually(_amc_status(simulator, amc_id, "RUNNING"), what="RUNNING at AMC")
        await simulator.add_fault(FaultRule(kinds=[RouteKind.CANCEL], fail_next=2, status=500))
        [row] = await poller.rows()
        await http.post(f"/executions/{row['execution_id']}/cancel")
        [done] = await completed_events(poller, 1)
    assert done.status == "CANCELLED"
    cancels = await simulator.requests(sim_account.instance_id, RouteKind.CANCEL)
    assert [c.status for c in cancels] == [500, 500, 200]
    # Between the refusals the execution was read back (GET), as the cancel left it running.
    gets = await simulator.requests(sim_account.instance_id, RouteKind.GET)
    assert sum(cancels[0].time < g.time < cancels[2].time for g in gets) >= 2


@pytest.mark.slow
async def test_gets_of_a_running_execution_follow_our_schedule_not_wait_until(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    running_s = 6.0
    intervals = [0.5, 1.0]
    await simulator.configure(pending_seconds=0.0)
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-6s", running_seconds=running_s))
    poller = await started(make_poller, simulator, sim_account, poll_intervals_s=intervals)
    await poller.send(external(run_for(sim_account, "wf-6s")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"

    gets = await simulator.requests(sim_account.instance_id, RouteKind.GET)
    [create] = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    # The schedule allows one GET at 0.5 s, then one a second; the end is seen by the first
    # GET after it. AMC's waitUntil (an hour before createTime) played no part: taken as a
    # hint, it had the poller look every few tens of milliseconds.
    span = gets[-1].time - create.time
    allowed = 1 + math.ceil(span / intervals[-1]) + 1
    assert len(gets) <= allowed
    gaps = [b.time - a.time for a, b in itertools.pairwise(gets)]
    assert min(gaps) >= intervals[0] * 0.9


async def test_an_ambiguous_post_with_a_new_york_window_leaves_one_execution_at_amc(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Earlier executions on the instance, one list page each: reconciling must page through.
    await simulator.configure(page_size=1)
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(
        external(run_for(sim_account, "wf-other")), external(run_for(sim_account, "wf-other2"))
    )
    await completed_events(poller, 2)
    # AMC creates the execution, but the answer is lost (a 503 after the fact).
    await simulator.add_fault(
        FaultRule(kinds=[RouteKind.CREATE], fail_next=1, status=503, after_handling=True)
    )
    new_york = run_for(
        sim_account,
        "wf-ny",
        time_window_time_zone="America/New_York",
        time_window_start=datetime(2024, 1, 20, tzinfo=NEW_YORK),
        time_window_end=datetime(2024, 1, 25, tzinfo=NEW_YORK),
        parameters={"campaign": "c-1", "limit": 10},
    )
    await poller.send(external(new_york))

    done = await completed_events(poller, 3)
    assert [e.status for e in done] == ["SUCCEEDED"] * 3
    ny = [v for v in await simulator.executions() if v.workflow_id == "wf-ny"]
    assert len(ny) == 1
    assert (ny[0].time_window_start, ny[0].time_window_end) == (
        "2024-01-20T00:00:00",
        "2024-01-25T00:00:00",
    )
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert [c.status for c in creates if c.workflow_id == "wf-ny"] == [503]
    assert done[2].amc_execution_id == ny[0].execution_id
    # Three executions listed one per page: the reconciler followed nextToken.
    assert len(await simulator.requests(sim_account.instance_id, RouteKind.LIST)) >= 3


async def test_an_expired_result_url_is_replaced_by_a_fresh_one_and_the_run_succeeds(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-slow-download", stale_url_answers=1, files=2)
    )
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, "wf-slow-download")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert done.result is not None
    assert done.result.row_count == 100
    assert len(await simulator.executions()) == 1
    url_calls = await simulator.requests(sim_account.instance_id, RouteKind.DOWNLOAD_URLS)
    assert [c.status for c in url_calls] == [200, 200]
    fetched = await simulator.requests(kind=RouteKind.RESULTS)
    assert 403 in [f.status for f in fetched]
    assert [f.status for f in fetched][-3:] == [200, 200, 200]  # two parts and the metadata


async def test_urls_refused_again_and_again_end_results_expired(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-gone", stale_url_answers=99))
    poller = await started(make_poller, simulator, sim_account, max_url_refreshes=3)
    await poller.send(external(run_for(sim_account, "wf-gone")))
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "RESULTS_EXPIRED"
    assert "3 fresh sets" in done.error.message
    assert not done.error.retryable
    url_calls = await simulator.requests(sim_account.instance_id, RouteKind.DOWNLOAD_URLS)
    assert len(url_calls) == 3


async def test_a_second_401_with_a_fresh_token_fails_with_a_clear_reason(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.register_instance(
        "amcprivate01", sim_account.advertiser_id, sim_account.marketplace_id, ["someone-else"]
    )
    poller = await started(make_poller, simulator, sim_account)
    async with TokenDesk(poller, simulator.base_url) as desk:
        desk.refresh_tokens[sim_account.user_id] = sim_account.refresh_token
        await poller.send(external(run_for(sim_account, instance_id="amcprivate01")))
        [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "AMC_ACCESS_DENIED"
    assert not done.error.retryable
    assert "amcprivate01" in done.error.message
    assert "Not authorized to access scope" in done.error.message
    creates = await simulator.requests("amcprivate01", RouteKind.CREATE)
    assert [c.status for c in creates] == [401, 401]
    assert len(desk.requests) == 1
    assert await simulator.executions("amcprivate01") == []


@pytest.mark.slow
async def test_results_survive_a_minute_of_failing_download_url_calls(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    """Issue "Faults": once AMC said SUCCEEDED, errors never end the execution while AMC
    holds the result. The outage is compressed (retry_max_s is 0.5 s here, so a few seconds
    hold more attempts than a minute does at the production backoff)."""
    await simulator.add_fault(FaultRule(kinds=[RouteKind.DOWNLOAD_URLS], error_rate=1.0))
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account)))

    async def many_refusals() -> bool:
        calls = await simulator.requests(sim_account.instance_id, RouteKind.DOWNLOAD_URLS)
        return len(calls) >= 12

    await eventually(many_refusals, what="a dozen failed downloadUrls calls")
    await simulator.clear_faults()
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert len(await simulator.executions()) == 1
    assert len(await simulator.requests(sim_account.instance_id, RouteKind.CREATE)) == 1
