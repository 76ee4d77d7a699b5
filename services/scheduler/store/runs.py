"""SQL of the `schedule_runs` and `schedule_run_executions` tables: a schedule's runs from
their insertion by the firing loop (or a trigger) through attempts, executions and outcomes,
and their history.

Run inserts work on whole batches with arrays and `unnest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.scheduler.store.paging import Paging, page
from services.scheduler.store.rows import Run, RunStats
from shared.db.status import rows_affected
from shared.outbox import Connection

RUN_COLUMNS = """id, schedule_id, fire_time, kind, state, skip_reason, run, event_id,
    execution_id, amc_execution_id, error_code, error_message, result_uri, row_count,
    created_at, emitted_at, submitted_at, completed_at, attempt, retry_at"""

OPEN_STATES = ("BUFFERED", "EMITTED", "SUBMITTED", "RETRYING")
# The states no run leaves by itself; the predicate of the schedule_runs_finished index.
FINISHED_STATES = "('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED')"
# Failures after which AMC may hold an execution of the run (see lock_rerunnable). With
# RESULTS_NOT_DOWNLOADABLE it holds a succeeded one whose results went to another channel.
NOT_RERUNNABLE_ERRORS = ("DOWNLOAD_FAILED", "SUBMISSION_UNKNOWN", "RESULTS_NOT_DOWNLOADABLE")


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


# --- attempts ------------------------------------------------------------------------------


async def claim_due_retries(conn: Connection, now: datetime, limit: int) -> list[Run]:
    """Lock up to `limit` runs whose next attempt is due (of active schedules); rows other
    replicas hold are skipped. Only run rows are locked: completions lock the schedule first,
    then the run, so this never waits on them while holding what they need."""
    return [
        Run.of(r)
        for r in await conn.fetch(
            f"""SELECT {", ".join("r." + c.strip() for c in RUN_COLUMNS.split(","))}
                FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id
                WHERE r.state = 'RETRYING' AND r.retry_at <= $1 AND s.state = 'ACTIVE'
                ORDER BY r.retry_at
                FOR UPDATE OF r SKIP LOCKED
                LIMIT $2""",
            now,
            limit,
        )
    ]


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


async def lock_run(conn: Connection, run_id: UUID) -> Run | None:
    row = await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id = $1 FOR UPDATE", run_id
    )
    return Run.of(row) if row is not None else None


async def lock_rerunnable(
    conn: Connection, schedule_id: UUID, since: datetime, run_ids: Sequence[UUID] | None
) -> list[Run]:
    """Runs of the schedule that ended without a result (FAILED, TIMED_OUT), fire time at
    or after `since`, oldest first; only `run_ids` when given. Not those whose execution AMC
    may hold (NOT_RERUNNABLE_ERRORS): the poller never calls them retryable, as
    another execution could be a second success for the fire time."""
    return [
        Run.of(r)
        for r in await conn.fetch(
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
    ]


# --- outcomes ------------------------------------------------------------------------------


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


async def oldest_buffered(conn: Connection, schedule_id: UUID) -> Run | None:
    row = await conn.fetchrow(
        f"""SELECT {RUN_COLUMNS} FROM schedule_runs
            WHERE schedule_id = $1 AND state = 'BUFFERED'
            ORDER BY fire_time LIMIT 1 FOR UPDATE""",
        schedule_id,
    )
    return Run.of(row) if row is not None else None


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
    return rows_affected(result)


async def last_manual_at(conn: Connection, schedule_id: UUID) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        """SELECT max(created_at) FROM schedule_runs
           WHERE schedule_id = $1 AND kind = 'MANUAL'""",
        schedule_id,
    )
    return value


async def get_run(conn: Connection, run_id: UUID) -> Run | None:
    row = await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id = $1", run_id)
    return Run.of(row) if row is not None else None


async def list_runs(
    conn: Connection,
    schedule_id: UUID,
    *,
    state: str | None,
    kind: str | None,
    paging: Paging,
) -> tuple[list[Run], int]:
    where = """schedule_id = $1 AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR kind = $3)"""
    rows, total = await page(
        conn,
        RUN_COLUMNS,
        "schedule_runs",
        where,
        "fire_time DESC",
        (schedule_id, state, kind),
        paging,
    )
    return [Run.of(r) for r in rows], total


async def run_stats(conn: Connection, schedule_id: UUID) -> RunStats:
    row: asyncpg.Record | None = await conn.fetchrow(
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
    return RunStats.of(row)


async def delete_finished(conn: Connection, before: datetime, limit: int) -> int:
    """Delete up to `limit` finished runs whose fire time and last change both lie before
    `before` (a run re-run lately stays until it is as old); returns how many went, with
    their executions. Read through the schedule_runs_finished index: a pass costs what it
    deletes. Open and retrying runs are kept however old they are."""
    result = await conn.execute(
        f"""DELETE FROM schedule_runs WHERE id IN (
                SELECT id FROM schedule_runs
                WHERE fire_time < $1 AND state IN {FINISHED_STATES}
                  AND coalesce(completed_at, created_at) < $1
                LIMIT $2)""",
        before,
        limit,
    )
    return rows_affected(result)
