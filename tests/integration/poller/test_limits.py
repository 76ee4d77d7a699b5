"""AMC's limits hold: at most N running per instance, and the request rate, per the simulator."""

from __future__ import annotations

import pytest

from amclocal.simulator import RouteKind, SimAccount, SimControl, WorkflowBehavior
from tests.integration.poller.conftest import (
    PollerFactory,
    eventually,
    external,
    lwa_token,
    run_for,
)


@pytest.mark.slow
async def test_thirty_requests_never_exceed_ten_running_or_the_rate(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # The simulator would run up to 100 at once: only the poller's cap keeps it to 10.
    await simulator.configure(max_running=100)
    # Long enough that all ten are submitted (10 requests/s, polls included) before one ends,
    # with polls spaced so they leave room for the submissions on a busy machine.
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-6s", running_seconds=6.0))
    poller = await make_poller(
        max_running_per_instance=10,
        requests_per_second_per_instance=10,
        poll_intervals_s=[1.0, 2.0],
    )
    await poller.give_token(sim_account.user_id, await lwa_token(simulator.base_url, sim_account))
    await eventually(lambda: poller.has_token(sim_account.user_id), what="token cached")
    await poller.send(*(external(run_for(sim_account, "wf-6s")) for _ in range(30)))

    rows = await poller.wait_terminal(30, timeout_s=90)
    assert {r["status"] for r in rows} == {"SUCCEEDED"}
    stats = (await simulator.stats()).instances[sim_account.instance_id]
    assert stats.executions_created == 30
    assert stats.max_running_seen == 10  # the cap was reached and never passed
    assert stats.throttled == 0
    assert stats.max_rps <= 10
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert len(creates) == 30
