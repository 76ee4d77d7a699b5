"""A schedule with date expressions, end to end: the scheduler fires, the real poller runs it at
the simulated AMC, and AMC receives exactly the window and parameter values the preview showed.
A retryable failure is retried as a new attempt, and a fire time never gets two successes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amclocal.simulator import RouteKind, SimAccount, SimControl, WorkflowBehavior
from tests.integration.poller.conftest import PollerFactory, eventually, started
from tests.integration.scheduler.harness import ShiftedClock, running_scheduler, settings_for

# Midnight in New York on 1 April 2024 (04:00 UTC): in UTC it would be 1 April for four hours
# already, and "the previous month" would be the same; "yesterday" differs at 23:00 NY.
FIRE = datetime(2024, 4, 1, 4, 0, tzinfo=UTC)
PARAMETERS: dict[str, Any] = {
    "month_start": "FIRSTDAYOFOFFSETMONTH(-1)",
    "month_end": "LASTDAYOFOFFSETMONTH(-1)",
    "mid_month": "FIFTEENTHDAYOFOFFSETMONTH(-1)|%Y%m%d",
    "since": "TODAY(-7)|DATETIME",
    "week_start": "FIRSTDAYOFOFFSETWEEK(-1)",
    "limit": 10,
}


async def test_amc_receives_what_the_preview_showed_and_a_retry_succeeds_once(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    # The first execution of this workflow and window fails at AMC (retryable: AMC_FAILED).
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-dates", fail_attempts=1, running_seconds=0.2)
    )
    await started(make_poller, simulator, sim_account)
    clock = ShiftedClock(FIRE - timedelta(minutes=5))
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock) as scheduler:
        clock.set(FIRE - timedelta(seconds=1))
        response = await scheduler.http.post(
            "/schedules",
            json={
                "user_id": sim_account.user_id,
                "instance_id": sim_account.instance_id,
                "advertiser_id": sim_account.advertiser_id,
                "marketplace_id": sim_account.marketplace_id,
                "workflow_id": "wf-dates",
                "timezone": "America/New_York",
                "cron": "0 0 * * *",
                "parameters": PARAMETERS,
                "window": {
                    "type": "EXPRESSION",
                    "start": "FIRSTDAYOFOFFSETMONTH(-1)",
                    "end": "FIRSTDAYOFOFFSETMONTH(0)",
                },
                "retry": {"attempts": 3, "backoff_s": 0.2},
            },
        )
        assert response.status_code == 201, response.text
        schedule_id = response.json()["id"]
        [preview] = (
            await scheduler.http.get(
                f"/schedules/{schedule_id}/preview",
                params={"count": 1, "after": (FIRE - timedelta(seconds=1)).isoformat()},
            )
        ).json()["items"]
        assert preview["utc"] == FIRE.isoformat()

        async def succeeded() -> dict[str, Any] | None:
            runs = (await scheduler.http.get(f"/schedules/{schedule_id}/runs")).json()["items"]
            return runs[0] if runs and runs[0]["state"] == "SUCCEEDED" else None

        run = await eventually(succeeded, 60, "the run to succeed")
        assert run["attempt"] == 2
        # Nothing more to re-run: the fire time succeeded.
        rerun = await scheduler.http.post(
            f"/schedules/{schedule_id}/rerun", json={"since": "2024-01-01T00:00:00Z"}
        )
        assert rerun.json()["rerun"] == 0

    creates = [
        c
        for c in await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        if c.workflow_id == "wf-dates"
    ]
    # Two attempts, two executions at AMC, each with exactly the previewed values. AMC's
    # parameterValues are strings: the poller sends other JSON values as their JSON text.
    assert len(creates) == 2
    expected = {k: v if isinstance(v, str) else str(v) for k, v in preview["parameters"].items()}
    assert expected == {
        "month_start": "2024-03-01",
        "month_end": "2024-03-31",
        "mid_month": "20240315",
        "since": "2024-03-25T00:00:00",
        "week_start": "2024-03-25",  # Monday 1 April: the previous week began 25 March
        "limit": "10",
    }
    for create in creates:
        assert create.parameter_values == expected
        assert (
            (create.time_window_start, create.time_window_end)
            == (
                preview["time_window_start"],
                preview["time_window_end"],
            )
            == ("2024-03-01T00:00:00", "2024-04-01T00:00:00")
        )
        assert create.time_window_time_zone == "America/New_York"
    statuses = [v.status.value for v in await simulator.executions(sim_account.instance_id)]
    assert sorted(s for s in statuses) == ["FAILED", "SUCCEEDED"]


async def test_a_rerun_of_a_failed_fire_time_sends_the_same_values_and_succeeds_once(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    await simulator.set_workflow(
        WorkflowBehavior(workflow_id="wf-rerun", fail_attempts=1, running_seconds=0.2)
    )
    await started(make_poller, simulator, sim_account)
    clock = ShiftedClock(FIRE - timedelta(minutes=5))
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock) as scheduler:
        clock.set(FIRE - timedelta(seconds=1))
        response = await scheduler.http.post(
            "/schedules",
            json={
                "user_id": sim_account.user_id,
                "instance_id": sim_account.instance_id,
                "advertiser_id": sim_account.advertiser_id,
                "marketplace_id": sim_account.marketplace_id,
                "workflow_id": "wf-rerun",
                "timezone": "America/New_York",
                "cron": "0 0 * * *",
                "parameters": {"day": "TODAY(-1)"},
                "window": {"type": "LOOKBACK", "days": 7},
            },
        )
        assert response.status_code == 201, response.text
        schedule_id = response.json()["id"]

        async def in_state(state: str) -> dict[str, Any] | None:
            runs = (await scheduler.http.get(f"/schedules/{schedule_id}/runs")).json()["items"]
            return runs[0] if runs and runs[0]["state"] == state else None

        failed = await eventually(lambda: in_state("FAILED"), 60, "the run to fail")
        assert failed["attempt"] == 1
        # Days later, an operator re-runs the failures since 1 April.
        clock.set(FIRE + timedelta(days=3))
        rerun = await scheduler.http.post(
            f"/schedules/{schedule_id}/rerun", json={"since": "2024-04-01T00:00:00-04:00"}
        )
        assert rerun.json()["rerun"] == 1
        done = await eventually(lambda: in_state("SUCCEEDED"), 60, "the re-run to succeed")
        assert (done["id"], done["attempt"]) == (failed["id"], 2)
        again = await scheduler.http.post(
            f"/schedules/{schedule_id}/rerun", json={"since": "2024-04-01T00:00:00-04:00"}
        )
        assert again.json()["rerun"] == 0

    creates = [
        c
        for c in await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        if c.workflow_id == "wf-rerun"
    ]
    # The re-run sent what the fire time sent (31 March), not what 4 April would give.
    assert [c.parameter_values for c in creates] == [{"day": "2024-03-31"}] * 2
    assert {(c.time_window_start, c.time_window_end) for c in creates} == {
        ("2024-03-24T00:00:00", "2024-03-31T00:00:00")
    }
    statuses = sorted(
        v.status.value
        for v in await simulator.executions(sim_account.instance_id)
        if v.workflow_id == "wf-rerun"
    )
    assert statuses == ["FAILED", "SUCCEEDED"]
