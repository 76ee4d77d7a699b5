"""Outcomes applied straight through the engine: simultaneous completions, late events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from uuid import UUID

from services.collector.runtime import CollectorRuntime
from shared.contract import (
    ExecutionCompleted,
    ExecutionError,
    ExecutionSubmitted,
    Origin,
    OriginKind,
    ResultLocation,
)
from tests.integration.collector.harness import running_collector, settings_for


def _origin(week_id: UUID) -> Origin:
    return Origin(kind=OriginKind.COLLECTION, id=str(week_id))


def completed(week_id: UUID, execution_id: UUID, *, ok: bool = True) -> ExecutionCompleted:
    if ok:
        return ExecutionCompleted(
            execution_id=execution_id,
            origin=_origin(week_id),
            status="SUCCEEDED",
            instance_id="amc-inst-1",
            user_id="user-1",
            result=ResultLocation(uri="file:///r.csv", row_count=1, size_bytes=1),
        )
    return ExecutionCompleted(
        execution_id=execution_id,
        origin=_origin(week_id),
        status="FAILED",
        instance_id="amc-inst-1",
        user_id="user-1",
        error=ExecutionError(code="AMC_UNAVAILABLE", message="503", retryable=True),
    )


def submitted(week_id: UUID, execution_id: UUID) -> ExecutionSubmitted:
    return ExecutionSubmitted(
        execution_id=execution_id,
        amc_execution_id=f"amc-{execution_id.hex[:8]}",
        instance_id="amc-inst-1",
        user_id="user-1",
        origin=_origin(week_id),
    )


async def apply(runtime: CollectorRuntime, event: ExecutionSubmitted | ExecutionCompleted) -> None:
    week_id = UUID(event.origin.id)
    async with runtime.pool.acquire() as conn, conn.transaction():
        if isinstance(event, ExecutionSubmitted):
            await runtime.engine.on_submitted(conn, week_id, event)
        else:
            await runtime.engine.on_completed(conn, week_id, event)


async def week_states(runtime: CollectorRuntime, cid: UUID) -> dict[str, int]:
    rows = await runtime.pool.fetch(
        """SELECT status, count(*) AS n FROM collection_weeks
           WHERE collection_id = $1 GROUP BY status""",
        cid,
    )
    return {r["status"]: r["n"] for r in rows}


async def requested_weeks(runtime: CollectorRuntime, cid: UUID) -> list[Any]:
    return await runtime.pool.fetch(
        """SELECT id, attempt, status, execution_id FROM collection_weeks
           WHERE collection_id = $1 AND status IN ('REQUESTED', 'RUNNING') ORDER BY seq""",
        cid,
    )


async def test_simultaneous_completions_keep_the_in_flight_limit_exactly(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    # No poller: each outcome in its own transaction on its own connection, all at once.
    settings = settings_for(uid, database_url, kafka_bootstrap, db_pool_max=10)
    async with running_collector(settings) as collector:
        runtime = collector.runtime
        cid = UUID((await collector.create(max_weeks_in_flight=8))["id"])
        weeks = await requested_weeks(runtime, cid)
        assert len(weeks) == 8

        await asyncio.gather(*(apply(runtime, completed(w["id"], uuid.uuid4())) for w in weeks))
        assert await week_states(runtime, cid) == {"SUCCEEDED": 8, "REQUESTED": 8, "PENDING": 10}


async def test_late_events_of_an_earlier_attempt_change_nothing(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap, retry_backoff_s=0.0)
    async with running_collector(settings) as collector:
        runtime = collector.runtime
        cid = UUID((await collector.create(end_date="2024-01-07", max_attempts=3))["id"])
        (week,) = await requested_weeks(runtime, cid)
        first = uuid.uuid4()

        # Attempt 1 fails transiently, its completion overtaking its submission.
        await apply(runtime, completed(week["id"], first, ok=False))
        (retried,) = await requested_weeks(runtime, cid)
        assert (retried["attempt"], retried["status"]) == (2, "REQUESTED")

        # The late submission of attempt 1 must not pass for attempt 2's execution.
        await apply(runtime, submitted(week["id"], first))
        (still,) = await requested_weeks(runtime, cid)
        assert (still["status"], still["execution_id"]) == ("REQUESTED", None)

        second = uuid.uuid4()
        await apply(runtime, submitted(week["id"], second))
        # A repeated completion of attempt 1 is not attempt 2's outcome either.
        await apply(runtime, completed(week["id"], first, ok=True))
        (running,) = await requested_weeks(runtime, cid)
        assert (running["status"], running["execution_id"]) == ("RUNNING", second)

        await apply(runtime, completed(week["id"], second))
        assert await week_states(runtime, cid) == {"SUCCEEDED": 1}
        done = await collector.wait_status(str(cid), "COMPLETED", timeout_s=10)
        assert done["progress"]["counts"]["SUCCEEDED"] == 1


async def test_a_batch_of_completions_is_recorded_together_and_dispatched_once(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    # What the consumer's batch handler does with a wave: all outcomes in one call.
    settings = settings_for(
        uid, database_url, kafka_bootstrap, retry_backoff_s=60.0, retry_backoff_max_s=60.0
    )
    async with running_collector(settings) as collector:
        runtime = collector.runtime
        cid = UUID((await collector.create(max_weeks_in_flight=8))["id"])
        weeks = await requested_weeks(runtime, cid)
        assert len(weeks) == 8
        stale = weeks[7]
        await apply(runtime, submitted(stale["id"], uuid.uuid4()))
        batch = [
            *((w["id"], completed(w["id"], uuid.uuid4())) for w in weeks[:6]),
            (weeks[6]["id"], completed(weeks[6]["id"], uuid.uuid4(), ok=False)),
            # Not the execution the week is running: ignored, the week stays in flight.
            (stale["id"], completed(stale["id"], uuid.uuid4())),
            (uuid.uuid4(), completed(uuid.uuid4(), uuid.uuid4())),  # no such week
        ]
        async with runtime.pool.acquire() as conn, conn.transaction():
            await runtime.engine.on_completed_many(conn, batch)

        # Six succeeded, one waits for its retry: seven slots freed, seven next weeks requested.
        assert await week_states(runtime, cid) == {
            "SUCCEEDED": 6,
            "PENDING": 18 - 7 + 1,
            "REQUESTED": 7,
            "RUNNING": 1,
        }
        failed = await runtime.pool.fetchrow(
            "SELECT status, error_code, not_before > now() AS waits FROM collection_weeks"
            " WHERE id = $1",
            weeks[6]["id"],
        )
        assert failed is not None
        assert (failed["status"], failed["error_code"], failed["waits"]) == (
            "PENDING",
            "AMC_UNAVAILABLE",
            True,
        )
        succeeded = await runtime.pool.fetch(
            "SELECT result_uri, row_count, error_code FROM collection_weeks WHERE id = ANY($1)",
            [w["id"] for w in weeks[:6]],
        )
        assert {tuple(r) for r in succeeded} == {("file:///r.csv", 1, None)}
