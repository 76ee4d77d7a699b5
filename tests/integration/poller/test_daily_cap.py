"""AMC's daily cap on executions per instance: runs past it wait, visibly, for the next day.

Amazon documents the cap (createWorkflowExecution: "up to 30 times per day, per AMC instance")
but not its refusal; the poller counts its own submissions and holds the rest back, and a
refusal it did not see coming (another tool used the day's executions) is waited out too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amclocal.simulator import RouteKind, SimAccount, SimControl
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    PollerFactory,
    SettingsFactory,
    eventually,
    external,
    run_for,
    served_poller,
    started,
)


def next_midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


async def test_runs_past_the_cap_wait_for_the_next_day_then_run(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    await simulator.configure(daily_execution_cap=2)
    settings = poller_settings(api_key="cap-test-key", daily_executions_per_instance=2)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        await poller.send(*(external(run_for(sim_account)) for _ in range(4)))

        async def two_done_two_held() -> list[dict[str, Any]] | None:
            rows = await poller.rows()
            done = [r for r in rows if r["status"] == "SUCCEEDED"]
            held = [r for r in rows if r["waiting_reason"] is not None]
            return held if len(done) == 2 and len(held) == 2 else None

        held = await eventually(two_done_two_held, what="two runs done, two held back")
        view = (await http.get(f"/executions/{held[0]['execution_id']}")).json()
        assert view["status"] == "QUEUED"
        assert "waiting for tomorrow's cap: 2/2 used" in view["waiting_reason"]
        assert "00:00 UTC" in view["waiting_reason"]
        assert datetime.fromisoformat(view["next_action_at"]) == next_midnight_utc()
        parked = poller.runtime.registry.get_sample_value(
            "amc_poller_daily_cap_parked_total", {"amc_instance": sim_account.instance_id}
        )
        assert parked == 2
        # Held back, not refused: AMC saw two creations and no third.
        creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        assert [c.status for c in creates] == [200, 200]

        # The next UTC day, for the poller: today's submissions become yesterday's and the
        # held runs fall due. (The simulator's clock cannot move a day, so its cap is lifted.)
        await simulator.configure(daily_execution_cap=0)
        await poller.runtime.pool.execute(
            """UPDATE executions SET submit_intent_at = submit_intent_at - interval '1 day',
                                     next_action_at = LEAST(next_action_at, now())"""
        )
        rows = await poller.wait_terminal(4)
        assert {r["status"] for r in rows} == {"SUCCEEDED"}
        assert all(r["waiting_reason"] is None for r in rows)


async def test_a_refusal_for_the_cap_is_waited_out_not_retried(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Another tool used the instance's day: AMC refuses although the poller counted one.
    await simulator.configure(daily_execution_cap=1)
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account)), external(run_for(sim_account)))

    async def refused_and_queued() -> list[dict[str, Any]] | None:
        rows = await poller.rows()
        queued = [r for r in rows if r["status"] == "QUEUED" and r["submit_intent_at"]]
        return queued if len(queued) == 1 and len(rows) == 2 else None

    [row] = await eventually(refused_and_queued, what="the refused run queued again")
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert sorted(c.status or 0 for c in creates) == [200, 429]
    # It waits for the Retry-After AMC gave (the next day), not a failure or a retry loop.
    assert row["next_action_at"] >= next_midnight_utc() - timedelta(seconds=30)
    assert row["error_code"] is None
