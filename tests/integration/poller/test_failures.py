"""Each way an execution can go wrong ends in the right state with the right event."""

from __future__ import annotations

from typing import Any

import pytest

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl, WorkflowBehavior
from shared.contract import ScheduleDue
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    TokenDesk,
    completed_events,
    eventually,
    external,
    run_for,
    schedule_due,
    started,
)
from tests.support.kafka import TopicReader


async def test_failed_amc_execution_fails_with_amcs_reason(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-bad", fail=True, failure_reason="Column x not found")
    )
    poller = await started(make_poller, simulator, sim_account)
    event = external(run_for(sim_account, "wf-bad"))
    await poller.send(event)
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.origin == event.origin
    assert done.error is not None
    assert done.error.code == "AMC_FAILED"
    assert "Column x not found" in done.error.message
    assert done.error.retryable is True
    assert done.amc_execution_id is not None


async def test_validation_answer_fails_without_retry(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, instance_id="amc-nowhere")))
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "AMC_VALIDATION"
    assert "amc-nowhere was not found" in done.error.message
    assert done.error.retryable is False
    assert done.amc_execution_id is None
    assert len(await simulator.requests(kind=RouteKind.CREATE)) == 1
    assert poller.completed_count("FAILED") == 1


async def test_server_errors_are_retried_until_amc_answers(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.CREATE], fail_next=2, status=503))
    await simulator.add_fault(FaultRule(kinds=[RouteKind.GET], fail_next=2, status=500))
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account)))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    creates = await simulator.requests(kind=RouteKind.CREATE)
    assert [r.status for r in creates] == [503, 503, 200]
    # Each ambiguous 5xx was reconciled (listed) before the next POST.
    lists = await simulator.requests(kind=RouteKind.LIST)
    assert len(lists) >= 2
    assert lists[0].time > creates[0].time
    assert lists[1].time < creates[2].time
    executions = await simulator.executions()
    assert len(executions) == 1


async def test_amc_down_opens_the_breaker_and_fails_as_unavailable(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await started(
        make_poller, simulator, sim_account, max_transient_attempts=3, breaker_failure_threshold=2
    )
    await poller.send(external(run_for(sim_account)))
    await eventually(lambda: _status_is(poller, "RUNNING", "PENDING"), what="execution at AMC")
    await simulator.add_fault(FaultRule(kinds=[RouteKind.GET], error_rate=1.0, status=502))
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "AMC_UNAVAILABLE"
    assert done.error.retryable is True
    opened = poller.runtime.registry.get_sample_value(
        "amc_poller_amc_calls_total", {"endpoint": "get", "outcome": "circuit_open"}
    )
    refused = poller.runtime.registry.get_sample_value(
        "amc_poller_amc_calls_total", {"endpoint": "get", "outcome": "ServerError"}
    )
    assert refused == 3
    # With the breaker open between failures, the probes were spaced out, not hammered.
    gets = [r for r in await simulator.requests(kind=RouteKind.GET) if r.status == 502]
    assert len(gets) == 3
    assert opened is None or opened >= 0


async def _status_is(poller: PollerHarness, *statuses: str) -> bool:
    rows = await poller.rows()
    return bool(rows) and rows[0]["status"] in statuses


@pytest.mark.slow
async def test_throttling_honours_retry_after(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.configure(rate_limit_per_second=2)
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(*(external(run_for(sim_account)) for _ in range(4)))
    rows = await poller.wait_terminal(4)
    assert {r["status"] for r in rows} == {"SUCCEEDED"}
    stats = (await simulator.stats()).instances[sim_account.instance_id]
    assert stats.throttled > 0
    records = await simulator.requests(sim_account.instance_id)
    api = [r for r in records if r.kind is not RouteKind.RESULTS]
    for throttled in (r for r in api if r.status == 429):
        # Retry-After was 1 s: after the answer, nobody called the instance until then
        # (requests already on their way when it came back are allowed a moment).
        quiet = [r for r in api if throttled.time + 0.15 < r.time < throttled.time + 0.95]
        assert quiet == [], f"called during Retry-After: {quiet}"


async def test_unauthorized_then_refreshed_token_resumes(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-slow", running_seconds=2.0))
    poller = await started(make_poller, simulator, sim_account)
    async with TokenDesk(poller, simulator.base_url) as desk:
        desk.refresh_tokens[sim_account.user_id] = sim_account.refresh_token
        await poller.send(external(run_for(sim_account, "wf-slow")))
        await eventually(lambda: _status_is(poller, "RUNNING"), what="RUNNING")
        assert await simulator.expire_access_tokens(sim_account.user_id) >= 1
        [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    assert [r.user_id for r in desk.requests] == [sim_account.user_id]
    gets = await simulator.requests(kind=RouteKind.GET)
    assert 401 in [r.status for r in gets]
    assert len(await simulator.requests(kind=RouteKind.CREATE)) == 1


async def test_revoked_and_unknown_users_fail_with_clear_errors(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await make_poller()
    await simulator.revoke_user(sim_account.user_id)
    async with TokenDesk(poller, simulator.base_url) as desk:
        desk.refresh_tokens[sim_account.user_id] = sim_account.refresh_token
        revoked = schedule_due(run_for(sim_account))
        unknown = schedule_due(run_for(sim_account, user_id="user-nobody"))
        await poller.send(revoked, revoked, unknown)
        events = await completed_events(poller, 2)
    by_origin = {e.origin: e for e in events}
    assert set(by_origin) == {revoked.origin, unknown.origin}
    gone = by_origin[revoked.origin]
    assert gone.status == "FAILED"
    assert gone.error is not None
    assert gone.error.code == "REAUTH_REQUIRED"
    assert gone.error.retryable is False
    assert gone.user_id == sim_account.user_id
    nobody = by_origin[unknown.origin]
    assert nobody.error is not None
    assert nobody.error.code == "UNKNOWN_USER"
    assert await simulator.requests(kind=RouteKind.CREATE) == []
    assert poller.completed_count("FAILED") == 2


async def test_results_amc_no_longer_has_fail_as_expired(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.RESULTS], fail_next=1000, status=503))
    # AMC answering "unavailable for download" right after SUCCEEDED is waited out for a
    # grace period; here there is none, so the first such answer means the results are gone.
    poller = await started(make_poller, simulator, sim_account, results_unavailable_grace_s=0.0)
    await poller.send(external(run_for(sim_account)))
    await eventually(_results_requested(simulator), what="a result download attempt")
    [execution] = await simulator.executions()
    await simulator.expire_results(execution.execution_id)
    await simulator.clear_faults()
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.error is not None
    assert done.error.code == "RESULTS_EXPIRED"
    assert done.error.retryable is False
    assert poller.completed_count("FAILED") == 1


def _results_requested(simulator: SimControl) -> Any:
    async def check() -> bool:
        return bool(await simulator.requests(kind=RouteKind.RESULTS))

    return check


async def test_execution_past_amcs_timeout_is_cancelled_and_timed_out(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-forever", running_seconds=600))
    poller = await started(make_poller, simulator, sim_account, amc_execution_timeout_s=1.0)
    await poller.send(external(run_for(sim_account, "wf-forever")))
    [done] = await completed_events(poller, 1)
    assert done.status == "TIMED_OUT"
    assert done.error is not None
    assert done.error.code == "TIMED_OUT"
    assert done.error.retryable is True
    [execution] = await simulator.executions()
    assert execution.status == "CANCELLED"
    assert poller.completed_count("TIMED_OUT") == 1


async def test_invalid_request_is_dead_lettered_with_the_reason(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await make_poller()
    good = schedule_due(run_for(sim_account))
    bad = good.model_copy(update={"origin": good.origin.model_copy(update={"id": "other"})})
    # model_copy does not validate: the event goes out as a careless producer would send it.
    zone = good.model_copy(
        update={"run": good.run.model_copy(update={"time_window_time_zone": "Mars/Olympus"})}
    )
    await poller.send(bad, zone)
    async with TopicReader(poller.bootstrap, poller.topic(ScheduleDue) + ".dlq") as dlq:
        letters = [r.json() for r in await dlq.wait_count(2)]
    reasons = sorted(letter["reason"] for letter in letters)
    assert "origin must be {kind: schedule, id: run_id}" in reasons[0]
    assert "'Mars/Olympus' is not an IANA time zone" in reasons[1]
    assert await poller.rows() == []
