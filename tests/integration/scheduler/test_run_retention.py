"""SCHEDULER_RUN_RETENTION_DAYS: finished runs whose fire time is past it are deleted with
their executions; open runs, recent runs and runs re-run lately are kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.scheduler import retention
from shared.db import prune
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
    wait_until,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def scheduler(uid: str, database_url: str, kafka_bootstrap: str) -> AsyncIterator[Scheduler]:
    settings = settings_for(
        uid, database_url, kafka_bootstrap, run_retention_days=30, retention_interval_s=0.2
    )
    async with running_scheduler(settings, now=ShiftedClock(NOW)) as running:
        yield running


async def _run(
    scheduler: Scheduler,
    schedule_id: str,
    *,
    fired_days_ago: float,
    state: str,
    completed_days_ago: float | None = None,
) -> UUID:
    """A run of `schedule_id` fired that long before NOW, in `state`, with an execution."""
    run_id = uuid4()
    fired = NOW - timedelta(days=fired_days_ago)
    completed = None if completed_days_ago is None else NOW - timedelta(days=completed_days_ago)
    async with scheduler.runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO schedule_runs (id, schedule_id, fire_time, kind, state, skip_reason,
                                          created_at, completed_at)
               VALUES ($1, $2, $3, 'SCHEDULED', $4,
                       CASE WHEN $4 = 'SKIPPED' THEN 'overlap' END, $3, $5)""",
            run_id,
            UUID(schedule_id),
            fired,
            state,
            completed,
        )
        await conn.execute(
            """INSERT INTO schedule_run_executions (execution_id, run_id, attempt, status)
               VALUES ($1, $2, 1, 'SUBMITTED')""",
            uuid4(),
            run_id,
        )
    return run_id


async def _kept(scheduler: Scheduler) -> set[UUID]:
    rows = await scheduler.runtime.pool.fetch("SELECT id FROM schedule_runs")
    return {row["id"] for row in rows}


async def test_finished_runs_past_the_horizon_go_with_their_executions(
    scheduler: Scheduler,
) -> None:
    schedule_id = (await scheduler.create())["id"]
    old = {
        state: await _run(scheduler, schedule_id, fired_days_ago=31 + n, state=state)
        for n, state in enumerate(("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "SKIPPED"))
    }
    kept = {
        "open": await _run(scheduler, schedule_id, fired_days_ago=40, state="SUBMITTED"),
        "retrying": await _run(scheduler, schedule_id, fired_days_ago=41, state="RETRYING"),
        "recent": await _run(scheduler, schedule_id, fired_days_ago=29, state="SUCCEEDED"),
        "re-run lately": await _run(
            scheduler, schedule_id, fired_days_ago=42, state="FAILED", completed_days_ago=2
        ),
    }

    async def pruned() -> bool:
        return not set(old.values()) & await _kept(scheduler)

    await wait_until(pruned, what="the retention loop to delete the old finished runs")
    assert set(kept.values()) <= await _kept(scheduler)
    orphans = await scheduler.runtime.pool.fetchval(
        "SELECT count(*) FROM schedule_run_executions WHERE run_id = ANY($1::uuid[])",
        list(old.values()),
    )
    assert orphans == 0
    assert await scheduler.runtime.pool.fetchval(
        "SELECT count(*) FROM schedule_run_executions"
    ) == len(kept)


async def test_one_pass_deletes_in_batches_until_none_is_left(
    uid: str, database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop's first pass runs at start, on no runs; the next is an hour away.
    settings = settings_for(
        uid, database_url, kafka_bootstrap, run_retention_days=30, retention_interval_s=3600
    )
    async with running_scheduler(settings, now=ShiftedClock(NOW)) as scheduler:
        schedule_id = (await scheduler.create())["id"]
        monkeypatch.setattr(prune, "BATCH", 2)
        old = {
            await _run(scheduler, schedule_id, fired_days_ago=31 + n, state="SUCCEEDED")
            for n in range(5)
        }
        recent = await _run(scheduler, schedule_id, fired_days_ago=1, state="SUCCEEDED")
        runtime = scheduler.runtime
        deleted: list[int] = []

        async def one_pass() -> bool:
            # None while the start's pass still holds the turn.
            deleted.append(
                await retention.delete_old(runtime.pool, runtime.scheduler_settings, runtime.now)
            )
            return deleted[-1] > 0

        await wait_until(one_pass, what="a pass of this test's own")
        assert deleted[-1] == 5
        assert not old & await _kept(scheduler)
        assert recent in await _kept(scheduler)
