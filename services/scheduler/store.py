"""SQL against the scheduler's own schema (schedules, schedule_runs).

Hot-path statements (claim, run inserts, advancing next fire times) work on whole batches
with arrays and `unnest`, so a burst of thousands of due schedules costs a few round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.outbox import Connection

Record = asyncpg.Record

SCHEDULE_COLUMNS = """id, name, user_id, instance_id, advertiser_id, marketplace_id, workflow_id,
    sql_query, run_options, output_format, parameters, timezone, spec, window_rule,
    catch_up_policy, overlap_policy, week_start, retry_policy, state, paused_reason, paused_at,
    consecutive_failures, next_fire_at, last_fire_at, created_at, updated_at"""

RUN_COLUMNS = """id, schedule_id, fire_time, kind, state, skip_reason, run, event_id,
    execution_id, amc_execution_id, error_code, error_message, result_uri, row_count,
    created_at, emitted_at, submitted_at, completed_at, attempt, retry_at"""

OPEN_STATES = ("BUFFERED", "EMITTED", "SUBMITTED", "RETRYING")
# Failures after which AMC may hold an execution of the run (see lock_rerunnable). With
# RESULTS_NOT_DOWNLOADABLE it holds a succeeded one whose results went to another channel.
NOT_RERUNNABLE_ERRORS = ("DOWNLOAD_FAILED", "SUBMISSION_UNKNOWN", "RESULTS_NOT_DOWNLOADABLE")


@dataclass(frozen=True)
class ScheduleValues:
    """Every column a person sets on a schedule (create and update write them all)."""

    name: str | None
    user_id: str
    instance_id: str
    advertiser_id: str | None
    marketplace_id: str | None
    workflow_id: str | None
    output_format: str
    parameters: dict[str, Any]
    timezone: str
    spec: dict[str, Any]
    window_rule: dict[str, Any]
    catch_up_policy: str
    overlap_policy: str
    week_start: str
    retry_policy: dict[str, Any] | None
    sql_query: str | None
    run_options: dict[str, Any]

    def args(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.user_id,
            self.instance_id,
            self.advertiser_id,
            self.marketplace_id,
            self.workflow_id,
            self.output_format,
            self.parameters,
            self.timezone,
            self.spec,
            self.window_rule,
            self.catch_up_policy,
            self.overlap_policy,
            self.week_start,
            self.retry_policy,
            self.sql_query,
            self.run_options,
        )


@dataclass(frozen=True)
class NewRun:
    id: UUID
    schedule_id: UUID
    fire_time: datetime
    kind: str
    state: str
    skip_reason: str | None
    run_json: str | None
    event_id: UUID | None
    created_at: datetime
    emitted_at: datetime | None


# --- schedules -----------------------------------------------------------------------------


async def insert_schedule(
    conn: Connection,
    schedule_id: UUID,
    values: ScheduleValues,
    next_fire_at: datetime | None,
    now: datetime,
) -> Record:
    row: Record | None = await conn.fetchrow(
        f"""INSERT INTO schedules (id, name, user_id, instance_id, advertiser_id, marketplace_id,
                workflow_id, output_format, parameters, timezone, spec, window_rule,
                catch_up_policy, overlap_policy, week_start, retry_policy, sql_query,
                run_options, next_fire_at, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18, $19, $20, $20)
            RETURNING {SCHEDULE_COLUMNS}""",
        schedule_id,
        *values.args(),
        next_fire_at,
        now,
    )
    assert row is not None
    return row


async def get_schedule(conn: Connection, schedule_id: UUID, *, lock: bool = False) -> Record | None:
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1{suffix}", schedule_id
    )


async def list_schedules(
    conn: Connection,
    *,
    user_id: str | None,
    instance_id: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Record], int]:
    where = """($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR instance_id = $2)
               AND ($3::text IS NULL OR state = $3)"""
    rows = await conn.fetch(
        f"""SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE {where}
            ORDER BY created_at, id LIMIT $4 OFFSET $5""",
        user_id,
        instance_id,
        state,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"SELECT count(*) FROM schedules WHERE {where}", user_id, instance_id, state
    )
    return list(rows), int(total)


async def update_schedule(
    conn: Connection,
    schedule_id: UUID,
    values: ScheduleValues,
    next_fire_at: datetime | None,
    now: datetime,
) -> Record:
    row: Record | None = await conn.fetchrow(
        f"""UPDATE schedules SET name = $2, user_id = $3, instance_id = $4, advertiser_id = $5,
                marketplace_id = $6, workflow_id = $7, output_format = $8, parameters = $9,
                timezone = $10, spec = $11, window_rule = $12, catch_up_policy = $13,
                overlap_policy = $14, week_start = $15, retry_policy = $16,
                sql_query = $17, run_options = $18, next_fire_at = $19, updated_at = $20
            WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}""",
        schedule_id,
        *values.args(),
        next_fire_at,
        now,
    )
    assert row is not None
    return row


async def delete_schedule(conn: Connection, schedule_id: UUID) -> bool:
    deleted = await conn.fetchval("DELETE FROM schedules WHERE id = $1 RETURNING true", schedule_id)
    return bool(deleted)


async def pause(conn: Connection, schedule_id: UUID, reason: str, now: datetime) -> Record:
    row: Record | None = await conn.fetchrow(
        f"""UPDATE schedules SET state = 'PAUSED', paused_reason = $2, paused_at = $3,
                updated_at = $3
            WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}""",
        schedule_id,
        reason,
        now,
    )
    assert row is not None
    return row


async def resume(
    conn: Connection, schedule_id: UUID, next_fire_at: datetime | None, now: datetime
) -> Record:
    row: Record | None = await conn.fetchrow(
        f"""UPDATE schedules SET state = 'ACTIVE', paused_reason = NULL, paused_at = NULL,
                consecutive_failures = 0, next_fire_at = $2, updated_at = $3
            WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}""",
        schedule_id,
        next_fire_at,
        now,
    )
    assert row is not None
    return row


# --- firing --------------------------------------------------------------------------------


async def claim_due(conn: Connection, now: datetime, limit: int) -> list[Record]:
    """Lock up to `limit` due schedules, earliest first; rows other replicas hold are skipped."""
    return list(
        await conn.fetch(
            """SELECT id, user_id, instance_id, advertiser_id, marketplace_id, workflow_id,
                      sql_query, run_options, output_format, parameters, spec::text AS spec_text,
                      window_rule::text AS window_rule_text, catch_up_policy, overlap_policy,
                      week_start, next_fire_at
                FROM schedules
                WHERE state = 'ACTIVE' AND next_fire_at <= $1
                ORDER BY next_fire_at
                FOR UPDATE SKIP LOCKED
                LIMIT $2""",
            now,
            limit,
        )
    )


async def open_run_counts(
    conn: Connection, schedule_ids: Sequence[UUID], stale_before: datetime
) -> dict[UUID, tuple[int, int]]:
    """(running, buffered) per schedule; runs emitted before `stale_before` count as lost."""
    rows = await conn.fetch(
        """SELECT schedule_id,
                  count(*) FILTER (WHERE state IN ('EMITTED', 'SUBMITTED', 'RETRYING'))
                      AS running,
                  count(*) FILTER (WHERE state = 'BUFFERED') AS buffered
           FROM schedule_runs
           WHERE schedule_id = ANY($1::uuid[])
             AND state IN ('BUFFERED', 'EMITTED', 'SUBMITTED', 'RETRYING')
             -- A run waiting for its next attempt is in flight, however old its emission.
             AND (state IN ('BUFFERED', 'RETRYING') OR emitted_at >= $2)
           GROUP BY schedule_id""",
        list(schedule_ids),
        stale_before,
    )
    return {r["schedule_id"]: (int(r["running"]), int(r["buffered"])) for r in rows}


async def insert_runs(conn: Connection, runs: Sequence[NewRun]) -> set[UUID]:
    """Insert runs; returns the ids actually inserted (a fire time already recorded is not)."""
    if not runs:
        return set()
    rows = await conn.fetch(
        """INSERT INTO schedule_runs (id, schedule_id, fire_time, kind, state, skip_reason, run,
                event_id, created_at, emitted_at)
           SELECT id, schedule_id, fire_time, kind, state, skip_reason, run::jsonb, event_id,
                  created_at, emitted_at
           FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::uuid[], $9::timestamptz[], $10::timestamptz[])
                AS u(id, schedule_id, fire_time, kind, state, skip_reason, run, event_id,
                     created_at, emitted_at)
           ON CONFLICT (schedule_id, fire_time) DO NOTHING
           RETURNING id""",
        [r.id for r in runs],
        [r.schedule_id for r in runs],
        [r.fire_time for r in runs],
        [r.kind for r in runs],
        [r.state for r in runs],
        [r.skip_reason for r in runs],
        [r.run_json for r in runs],
        [r.event_id for r in runs],
        [r.created_at for r in runs],
        [r.emitted_at for r in runs],
    )
    return {r["id"] for r in rows}


async def advance(
    conn: Connection,
    schedule_ids: Sequence[UUID],
    next_fire_ats: Sequence[datetime | None],
    last_fire_ats: Sequence[datetime | None],
) -> None:
    await conn.execute(
        """UPDATE schedules AS s
           SET next_fire_at = u.next_fire_at,
               last_fire_at = coalesce(u.last_fire_at, s.last_fire_at)
           FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])
                AS u(id, next_fire_at, last_fire_at)
           WHERE s.id = u.id""",
        list(schedule_ids),
        list(next_fire_ats),
        list(last_fire_ats),
    )


async def earliest_due(conn: Connection | asyncpg.Pool[Any]) -> datetime | None:
    """The earliest next fire time or retry of an active schedule."""
    value: datetime | None = await conn.fetchval(
        """SELECT least(
               (SELECT next_fire_at FROM schedules
                 WHERE state = 'ACTIVE' AND next_fire_at IS NOT NULL
                 ORDER BY next_fire_at LIMIT 1),
               (SELECT r.retry_at FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id
                 WHERE r.state = 'RETRYING' AND s.state = 'ACTIVE'
                 ORDER BY r.retry_at LIMIT 1))"""
    )
    return value


# --- attempts ------------------------------------------------------------------------------


async def claim_due_retries(conn: Connection, now: datetime, limit: int) -> list[Record]:
    """Lock up to `limit` runs whose next attempt is due (of active schedules); rows other
    replicas hold are skipped. Only run rows are locked: completions lock the schedule first,
    then the run, so this never waits on them while holding what they need."""
    return list(
        await conn.fetch(
            f"""SELECT {", ".join("r." + c.strip() for c in RUN_COLUMNS.split(","))}
                FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id
                WHERE r.state = 'RETRYING' AND r.retry_at <= $1 AND s.state = 'ACTIVE'
                ORDER BY r.retry_at
                FOR UPDATE OF r SKIP LOCKED
                LIMIT $2""",
            now,
            limit,
        )
    )


async def start_attempt(
    conn: Connection, run_id: UUID, attempt: int, event_id: UUID, at: datetime
) -> None:
    """The run is sent again as `attempt`: EMITTED, the previous attempt's outcome cleared
    (its execution stays in schedule_run_executions)."""
    await conn.execute(
        """UPDATE schedule_runs
           SET state = 'EMITTED', attempt = $2, event_id = $3, emitted_at = $4, retry_at = NULL,
               submitted_at = NULL, completed_at = NULL, execution_id = NULL,
               amc_execution_id = NULL, error_code = NULL, error_message = NULL,
               result_uri = NULL, row_count = NULL
           WHERE id = $1""",
        run_id,
        attempt,
        event_id,
        at,
    )


async def mark_retrying(
    conn: Connection, run_id: UUID, outcome: Outcome, retry_at: datetime, at: datetime
) -> None:
    """The current attempt failed and another is due at `retry_at`; the failure is kept for
    the history until the next attempt starts."""
    await conn.execute(
        """UPDATE schedule_runs
           SET state = 'RETRYING', retry_at = $2, execution_id = coalesce(execution_id, $3),
               amc_execution_id = coalesce($4, amc_execution_id), error_code = $5,
               error_message = $6, completed_at = $7
           WHERE id = $1 AND state IN ('EMITTED', 'SUBMITTED')""",
        run_id,
        retry_at,
        outcome.execution_id,
        outcome.amc_execution_id,
        outcome.error_code,
        outcome.error_message,
        at,
    )


@dataclass(frozen=True)
class KnownExecution:
    run_id: UUID
    attempt: int
    status: str


async def known_execution(conn: Connection, execution_id: UUID) -> KnownExecution | None:
    row = await conn.fetchrow(
        "SELECT run_id, attempt, status FROM schedule_run_executions WHERE execution_id = $1",
        execution_id,
    )
    return KnownExecution(row["run_id"], row["attempt"], row["status"]) if row else None


async def record_execution(
    conn: Connection, execution_id: UUID, run_id: UUID, attempt: int, status: str
) -> None:
    await conn.execute(
        """INSERT INTO schedule_run_executions (execution_id, run_id, attempt, status)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (execution_id) DO UPDATE SET status = excluded.status""",
        execution_id,
        run_id,
        attempt,
        status,
    )


async def lock_run(conn: Connection, run_id: UUID) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id = $1 FOR UPDATE", run_id
    )


async def lock_rerunnable(
    conn: Connection, schedule_id: UUID, since: datetime, run_ids: Sequence[UUID] | None
) -> list[Record]:
    """Runs of the schedule that ended without a result (FAILED, TIMED_OUT), fire time at
    or after `since`, oldest first; only `run_ids` when given. Not those whose execution AMC
    may hold (NOT_RERUNNABLE_ERRORS): the poller never calls them retryable, as
    another execution could be a second success for the fire time."""
    return list(
        await conn.fetch(
            f"""SELECT {RUN_COLUMNS} FROM schedule_runs
                WHERE schedule_id = $1 AND state IN ('FAILED', 'TIMED_OUT') AND fire_time >= $2
                  AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))
                  AND coalesce(error_code, '') <> ALL($4::text[])
                ORDER BY fire_time
                FOR UPDATE""",
            schedule_id,
            since,
            list(run_ids) if run_ids is not None else None,
            list(NOT_RERUNNABLE_ERRORS),
        )
    )


# --- runs ----------------------------------------------------------------------------------


async def mark_submitted(
    conn: Connection, run_id: UUID, execution_id: UUID, amc_execution_id: str, at: datetime
) -> bool:
    """EMITTED -> SUBMITTED; a run already finished (events out of order) keeps its state."""
    updated = await conn.fetchval(
        """UPDATE schedule_runs
           SET state = CASE WHEN state = 'EMITTED' THEN 'SUBMITTED' ELSE state END,
               execution_id = coalesce(execution_id, $2),
               amc_execution_id = coalesce(amc_execution_id, $3),
               submitted_at = coalesce(submitted_at, $4)
           WHERE id = $1 AND state IN ('EMITTED', 'SUBMITTED', 'SUCCEEDED', 'FAILED',
                                       'CANCELLED', 'TIMED_OUT')
           RETURNING true""",
        run_id,
        execution_id,
        amc_execution_id,
        at,
    )
    return bool(updated)


@dataclass(frozen=True)
class Outcome:
    state: str
    execution_id: UUID
    amc_execution_id: str | None
    error_code: str | None
    error_message: str | None
    result_uri: str | None
    row_count: int | None


async def mark_completed(
    conn: Connection, run_id: UUID, outcome: Outcome, at: datetime
) -> UUID | None:
    """Record a run's terminal state once; returns its schedule id, or None if nothing changed."""
    schedule_id: UUID | None = await conn.fetchval(
        """UPDATE schedule_runs
           SET state = $2, execution_id = coalesce(execution_id, $3),
               amc_execution_id = coalesce($4, amc_execution_id),
               error_code = $5, error_message = $6, result_uri = $7, row_count = $8,
               completed_at = $9
           WHERE id = $1 AND state IN ('EMITTED', 'SUBMITTED')
           RETURNING schedule_id""",
        run_id,
        outcome.state,
        outcome.execution_id,
        outcome.amc_execution_id,
        outcome.error_code,
        outcome.error_message,
        outcome.result_uri,
        outcome.row_count,
        at,
    )
    return schedule_id


async def set_failures(conn: Connection, schedule_id: UUID, count: int) -> None:
    await conn.execute(
        "UPDATE schedules SET consecutive_failures = $2 WHERE id = $1", schedule_id, count
    )


async def oldest_buffered(conn: Connection, schedule_id: UUID) -> Record | None:
    return await conn.fetchrow(
        f"""SELECT {RUN_COLUMNS} FROM schedule_runs
            WHERE schedule_id = $1 AND state = 'BUFFERED'
            ORDER BY fire_time LIMIT 1 FOR UPDATE""",
        schedule_id,
    )


async def has_running(conn: Connection, schedule_id: UUID, stale_before: datetime) -> bool:
    found = await conn.fetchval(
        """SELECT true FROM schedule_runs
           WHERE schedule_id = $1
             AND (state = 'RETRYING' OR (state IN ('EMITTED', 'SUBMITTED') AND emitted_at >= $2))
           LIMIT 1""",
        schedule_id,
        stale_before,
    )
    return bool(found)


async def emit_buffered(conn: Connection, run_id: UUID, event_id: UUID, at: datetime) -> None:
    await conn.execute(
        """UPDATE schedule_runs SET state = 'EMITTED', event_id = $2, emitted_at = $3
           WHERE id = $1 AND state = 'BUFFERED'""",
        run_id,
        event_id,
        at,
    )


async def skip_buffered(conn: Connection, schedule_id: UUID, reason: str) -> int:
    result = await conn.execute(
        """UPDATE schedule_runs SET state = 'SKIPPED', skip_reason = $2
           WHERE schedule_id = $1 AND state = 'BUFFERED'""",
        schedule_id,
        reason,
    )
    return int(result.split()[-1])


async def last_manual_at(conn: Connection, schedule_id: UUID) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        """SELECT max(created_at) FROM schedule_runs
           WHERE schedule_id = $1 AND kind = 'MANUAL'""",
        schedule_id,
    )
    return value


async def get_run(conn: Connection, run_id: UUID) -> Record | None:
    return await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id = $1", run_id)


async def list_runs(
    conn: Connection,
    schedule_id: UUID,
    *,
    state: str | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Record], int]:
    where = """schedule_id = $1 AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR kind = $3)"""
    rows = await conn.fetch(
        f"""SELECT {RUN_COLUMNS} FROM schedule_runs WHERE {where}
            ORDER BY fire_time DESC LIMIT $4 OFFSET $5""",
        schedule_id,
        state,
        kind,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"SELECT count(*) FROM schedule_runs WHERE {where}", schedule_id, state, kind
    )
    return list(rows), int(total)


async def run_stats(conn: Connection, schedule_id: UUID) -> Record:
    row: Record | None = await conn.fetchrow(
        """SELECT count(*) AS runs,
                  count(*) FILTER (WHERE state = 'SUCCEEDED') AS succeeded,
                  count(*) FILTER (WHERE state IN ('FAILED', 'TIMED_OUT')) AS failed,
                  count(*) FILTER (WHERE state = 'CANCELLED') AS cancelled,
                  count(*) FILTER (WHERE state = 'SKIPPED') AS skipped,
                  count(*) FILTER (WHERE state IN ('BUFFERED', 'EMITTED', 'SUBMITTED',
                                                   'RETRYING')) AS in_flight,
                  max(fire_time) FILTER (WHERE state <> 'SKIPPED') AS last_run_at,
                  (array_agg(state ORDER BY fire_time DESC)
                       FILTER (WHERE state <> 'SKIPPED'))[1] AS last_run_state,
                  avg(extract(epoch FROM completed_at - emitted_at))
                      FILTER (WHERE completed_at IS NOT NULL AND emitted_at IS NOT NULL)
                      AS mean_duration_s
           FROM schedule_runs WHERE schedule_id = $1""",
        schedule_id,
    )
    assert row is not None
    return row
