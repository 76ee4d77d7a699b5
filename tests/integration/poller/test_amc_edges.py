"""AMC's documented edges, against the simulator: rejected runs, statuses no document names,
results AMC will not let us download, and 429s that name no Retry-After (issue 20)."""

from __future__ import annotations

import itertools

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl, WorkflowBehavior
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    completed_events,
    eventually,
    external,
    run_for,
    started,
)


async def _gets_of(simulator: SimControl, amc_execution_id: str) -> list[float]:
    """Arrival times of the status polls of one AMC execution."""
    return [
        r.time
        for r in await simulator.requests(kind=RouteKind.GET)
        if r.execution_id == amc_execution_id
    ]


async def _finish_another(
    poller: PollerHarness, simulator: SimControl, account: SimAccount
) -> None:
    """Run one more execution through to its end: by then the poll loop has gone round many
    times, so a row it would still poll would have been polled."""
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-barrier"))
    await poller.send(external(run_for(account, "wf-barrier")))

    async def succeeded() -> bool:
        return poller.completed_count("SUCCEEDED") >= 1

    await eventually(succeeded, what="the barrier run to succeed")


async def test_a_rejected_execution_fails_at_once_and_is_not_polled_again(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Amazon's own client (aws-solutions/amazon-marketing-cloud-insights-on-aws,
    # workflow_manager_services.py) ends on REJECTED as on FAILED; the execute-workflow guide
    # says a query can be rejected. Before, REJECTED was polled as RUNNING for 12 hours.
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-rejected", running_seconds=600))
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, "wf-rejected")))

    async def running() -> str | None:
        found = [e for e in await simulator.executions() if e.workflow_id == "wf-rejected"]
        return found[0].execution_id if found and found[0].status == "RUNNING" else None

    amc_id = await eventually(running, what="the execution RUNNING at AMC")
    await eventually(
        lambda: _gets_of(simulator, amc_id), what="a status poll of the running execution"
    )
    await simulator.reject_execution(amc_id, "Query exceeds the instance's resource limit")
    [rejected_at] = [e.end_time for e in await simulator.executions() if e.execution_id == amc_id]
    assert rejected_at is not None

    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.amc_execution_id == amc_id
    assert done.error is not None
    assert done.error.code == "AMC_REJECTED"
    assert "Query exceeds the instance's resource limit" in done.error.message
    assert done.error.retryable is False

    # Within one poll: the first GET after the rejection (or one already in flight) saw it
    # and ended the run; none came after it, even once another run has been followed from
    # start to end.
    after = [t for t in await _gets_of(simulator, amc_id) if t >= rejected_at]
    assert len(after) <= 1
    await _finish_another(poller, simulator, sim_account)
    assert [t for t in await _gets_of(simulator, amc_id) if t >= rejected_at] == after


async def test_a_status_no_document_names_is_counted_and_followed_to_its_end(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Neither Amazon's OpenAPI nor its own client names "ARCHIVED": logged, counted
    # (amc_poller_unknown_amc_status_total, alert AmcUnknownExecutionStatus) and polled on
    # the normal schedule; the run ends when AMC says it ended.
    # An AMC that departs from every published document: the contract guard would rightly
    # call the simulator's answer a violation, so it is off for this test.
    await simulator.configure(contract_guard=False)
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-odd", running_seconds=1.5, running_status="ARCHIVED")
    )
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, "wf-odd")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    unknown = poller.runtime.registry.get_sample_value(
        "amc_poller_unknown_amc_status_total", {"status": "ARCHIVED"}
    )
    assert unknown is not None
    assert unknown >= 1


async def test_an_unknown_status_is_never_followed_past_the_execution_timeout(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.configure(contract_guard=False)  # as above: a status no document names
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-stuck", running_seconds=3600, running_status="ARCHIVED")
    )
    poller = await started(make_poller, simulator, sim_account, amc_execution_timeout_s=3.0)
    await poller.send(external(run_for(sim_account, "wf-stuck")))
    [done] = await completed_events(poller, 1)
    assert done.status == "TIMED_OUT"
    assert done.error is not None
    assert done.error.code == "TIMED_OUT"
    [execution] = [e for e in await simulator.executions() if e.workflow_id == "wf-stuck"]
    assert execution.status == "CANCELLED"


async def test_publishing_is_followed_as_running_and_not_counted_as_unknown(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Amazon's own client waits on PUBLISHING as on PENDING and RUNNING.
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-pub", running_seconds=1.0, running_status="PUBLISHING")
    )
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, "wf-pub")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    unknown = poller.runtime.registry.get_sample_value(
        "amc_poller_unknown_amc_status_total", {"status": "PUBLISHING"}
    )
    assert unknown is None
    [amc_id] = [e.execution_id for e in await simulator.executions()]
    polls = await simulator.requests(kind=RouteKind.GET)
    assert len([r for r in polls if r.execution_id == amc_id]) >= 2


async def test_results_amc_will_not_let_us_download_end_the_run_at_once(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Amazon's OpenAPI: WorkflowExecution.outputChannels; a DOWNLOAD channel UNAVAILABLE "is
    # not and will not be available through this channel". Before, the poller asked for URLs
    # that never came and ended RESULTS_EXPIRED much later.
    await simulator.set_workflow(
        WorkflowBehavior(
            workflow_id="wf-elsewhere",
            download_channel="UNAVAILABLE",
            download_unavailable_reason="The data set does not allow AMC as a results receiver",
            publish_channel=True,
        )
    )
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account, "wf-elsewhere")))
    [done] = await completed_events(poller, 1)
    assert done.status == "FAILED"
    assert done.result is None
    assert done.error is not None
    assert done.error.code == "RESULTS_NOT_DOWNLOADABLE"
    assert done.error.retryable is False
    assert "does not allow AMC as a results receiver" in done.error.message
    assert "PUBLISH AVAILABLE" in done.error.message
    assert await simulator.requests(kind=RouteKind.DOWNLOAD_URLS) == []
    [execution] = await simulator.executions()
    assert execution.status == "SUCCEEDED"


async def test_a_429_without_retry_after_backs_off_exponentially(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # rate-limiting.md: after 429s use exponential backoff ("2 seconds ... 4 seconds ... 8
    # seconds"); the OpenAPI does not declare Retry-After, so a 429 may come without it.
    # Before, the poller waited a flat second. Base 1 s here: waits of at least 0.5, 1 and 2 s
    # (equal jitter keeps half of each step), which a flat second cannot meet.
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-throttled", running_seconds=0))
    poller = await started(
        make_poller, simulator, sim_account, throttle_base_s=1.0, throttle_max_s=30.0
    )
    await simulator.add_fault(FaultRule(kinds=[RouteKind.GET], fail_next=3, status=429))
    await poller.send(external(run_for(sim_account, "wf-throttled")))
    [done] = await completed_events(poller, 1)
    assert done.status == "SUCCEEDED"
    gets = await simulator.requests(kind=RouteKind.GET)
    assert [r.status for r in gets[:4]] == [429, 429, 429, 200]
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(gets[:4])]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= 2 ** (n - 1) / 2, f"wait {n} after a 429 was {gap:.2f}s"
