"""SQL against the collector's own schema (collections, collection_weeks).

Every change to a collection's weeks happens with the collection row locked (FOR UPDATE), so
counting the weeks in flight and dispatching more is safe with any number of replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.collector.logic import CollectionStatus, WeekSlice, WeekStatus
from shared.contract import ExecutionError, ResultLocation
from shared.outbox import Connection

ADMISSION_LOCK = "amc-collector-admission"


@dataclass(frozen=True)
class CollectionRow:
    id: UUID
    queue_seq: int
    status: CollectionStatus
    run: dict[str, Any]
    start_date: date
    end_date: date
    week_start_day: str
    time_zone: str
    max_in_flight: int
    max_attempts: int
    weeks_total: int
    granularity: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # W3C carrier of the trace that created the collection ({} if none): weeks link to it.
    trace_context: dict[str, str]
    # Weeks submitted to AMC per UTC day at most (its share of the instance's cap); 0: none.
    daily_share: int = 0

    @classmethod
    def of(cls, r: asyncpg.Record) -> CollectionRow:
        return cls(**{**dict(r), "status": CollectionStatus(r["status"])})


@dataclass(frozen=True)
class WeekRow:
    id: UUID
    collection_id: UUID
    seq: int
    week_start: date
    week_end: date
    status: WeekStatus
    attempt: int
    attempt_limit: int
    not_before: datetime | None
    requested_at: datetime | None
    request_count: int
    submitted_at: datetime | None
    finished_at: datetime | None
    execution_id: UUID | None
    amc_execution_id: str | None
    error_code: str | None
    error_message: str | None
    result_uri: str | None
    row_count: int | None

    @classmethod
    def of(cls, r: asyncpg.Record) -> WeekRow:
        return cls(**{**dict(r), "status": WeekStatus(r["status"])})


_COLLECTION_COLUMNS = """id, queue_seq, status, run, start_date, end_date, week_start_day,
    time_zone, max_in_flight, max_attempts, weeks_total, granularity, created_at, updated_at,
    started_at, finished_at, trace_context, daily_share"""


# --- collections ----------------------------------------------------------------------------


async def insert_collection(
    conn: Connection,
    *,
    collection_id: UUID,
    run: dict[str, Any],
    start_date: date,
    end_date: date,
    week_start_day: str,
    time_zone: str,
    max_in_flight: int,
    max_attempts: int,
    weeks: Sequence[tuple[UUID, WeekSlice]],
    trace_context: dict[str, str] | None = None,
    granularity: str = "WEEK",
    daily_share: int = 0,
) -> None:
    await conn.execute(
        """INSERT INTO collections (id, status, run, start_date, end_date, week_start_day,
               time_zone, max_in_flight, max_attempts, weeks_total, trace_context, granularity,
               daily_share)
           VALUES ($1, 'QUEUED', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        collection_id,
        run,
        start_date,
        end_date,
        week_start_day,
        time_zone,
        max_in_flight,
        max_attempts,
        len(weeks),
        trace_context or {},
        granularity,
        daily_share,
    )
    await conn.copy_records_to_table(
        "collection_weeks",
        records=[
            (week_id, collection_id, w.seq, w.start, w.end, "PENDING", max_attempts)
            for week_id, w in weeks
        ],
        columns=[
            "id",
            "collection_id",
            "seq",
            "week_start",
            "week_end",
            "status",
            "attempt_limit",
        ],
    )


async def get_collection(conn: Connection, collection_id: UUID) -> CollectionRow | None:
    row = await conn.fetchrow(
        f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE id = $1", collection_id
    )
    return CollectionRow.of(row) if row else None


async def lock_collection(
    conn: Connection, collection_id: UUID, *, skip_locked: bool = False
) -> CollectionRow | None:
    """Lock one collection row for this transaction (None: absent, or locked elsewhere)."""
    wait = "SKIP LOCKED" if skip_locked else ""
    row = await conn.fetchrow(
        f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE id = $1 FOR UPDATE {wait}",
        collection_id,
    )
    return CollectionRow.of(row) if row else None


async def list_collections(
    conn: Connection, *, status: CollectionStatus | None, limit: int, offset: int
) -> list[CollectionRow]:
    rows = await conn.fetch(
        f"""SELECT {_COLLECTION_COLUMNS} FROM collections
            WHERE $1::text IS NULL OR status = $1
            ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
        status.value if status else None,
        limit,
        offset,
    )
    return [CollectionRow.of(r) for r in rows]


async def set_status(
    conn: Connection,
    collection_id: UUID,
    status: CollectionStatus,
    *,
    started: bool = False,
    finished: bool = False,
    requeue: bool = False,
) -> None:
    await conn.execute(
        """UPDATE collections SET status = $2, updated_at = now(),
               started_at = CASE WHEN $3 THEN coalesce(started_at, now()) ELSE started_at END,
               finished_at = CASE WHEN $4 THEN now() WHEN $5 THEN NULL ELSE finished_at END,
               queue_seq = CASE WHEN $5 THEN nextval('collection_queue_seq')
                                ELSE queue_seq END
           WHERE id = $1""",
        collection_id,
        status.value,
        started,
        finished,
        requeue,
    )


async def count_active(conn: Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM collections WHERE status = 'ACTIVE'")
    return n


async def lock_admission(conn: Connection) -> None:
    """Serialises promotions from QUEUED to ACTIVE across replicas (transaction-scoped)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))", ADMISSION_LOCK
    )


async def lock_next_queued(conn: Connection, limit: int) -> list[CollectionRow]:
    # SKIP LOCKED: a queued row locked elsewhere (an in-flight week of a resumed collection
    # being recorded) is taken on the next pass rather than risking a lock-order deadlock.
    rows = await conn.fetch(
        f"""SELECT {_COLLECTION_COLUMNS} FROM collections WHERE status = 'QUEUED'
            ORDER BY queue_seq LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [CollectionRow.of(r) for r in rows]


async def collections_with_due_weeks(conn: Connection, limit: int = 100) -> list[UUID]:
    """ACTIVE collections with a free slot and a pending week whose backoff has passed."""
    rows = await conn.fetch(
        """SELECT c.id FROM collections c
           WHERE c.status = 'ACTIVE'
             AND EXISTS (SELECT 1 FROM collection_weeks w
                         WHERE w.collection_id = c.id AND w.status = 'PENDING'
                           AND (w.not_before IS NULL OR w.not_before <= now()))
             AND (SELECT count(*) FROM collection_weeks w
                  WHERE w.collection_id = c.id
                    AND w.status IN ('REQUESTED', 'RUNNING')) < c.max_in_flight
           ORDER BY c.queue_seq LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def collections_with_stale_requests(
    conn: Connection, older_than_s: float, limit: int = 100
) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT DISTINCT collection_id FROM collection_weeks
           WHERE status = 'REQUESTED' AND requested_at < now() - make_interval(secs => $1)
           LIMIT $2""",
        older_than_s,
        limit,
    )
    return [r["collection_id"] for r in rows]


async def collections_unsettled(conn: Connection, limit: int = 100) -> list[UUID]:
    """Unfinished collections with no open week left: they only need their completion."""
    rows = await conn.fetch(
        """SELECT c.id FROM collections c
           WHERE (c.status IN ('QUEUED', 'ACTIVE', 'PAUSED')
                  OR (c.status = 'CANCELLED' AND c.finished_at IS NULL))
             AND NOT EXISTS (SELECT 1 FROM collection_weeks w
                             WHERE w.collection_id = c.id
                               AND w.status IN ('PENDING', 'REQUESTED', 'RUNNING'))
           LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def status_totals(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM collections GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def weeks_in_flight_total(conn: Connection) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM collection_weeks WHERE status IN ('REQUESTED', 'RUNNING')"
    )
    return n


# --- weeks ----------------------------------------------------------------------------------

_WEEK_COLUMNS = """id, collection_id, seq, week_start, week_end, status, attempt,
    attempt_limit, not_before, requested_at, request_count, submitted_at, finished_at,
    execution_id, amc_execution_id, error_code, error_message, result_uri, row_count"""


async def week_counts(conn: Connection, collection_id: UUID) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT status, count(*) AS n FROM collection_weeks
           WHERE collection_id = $1 GROUP BY status""",
        collection_id,
    )
    return {r["status"]: r["n"] for r in rows}


async def progress_of(
    conn: Connection, collection_ids: Sequence[UUID]
) -> dict[UUID, tuple[dict[str, int], float | None]]:
    """`week_counts` and `mean_week_seconds` of many collections in one query (a list page
    asked two queries per collection before: bench/console)."""
    rows = await conn.fetch(
        """SELECT collection_id, status, count(*) AS n,
                  sum(extract(epoch FROM finished_at - requested_at))
                      FILTER (WHERE requested_at IS NOT NULL AND finished_at IS NOT NULL)
                      AS seconds,
                  count(*) FILTER (WHERE requested_at IS NOT NULL AND finished_at IS NOT NULL)
                      AS timed
           FROM collection_weeks WHERE collection_id = ANY($1::uuid[])
           GROUP BY collection_id, status""",
        list(collection_ids),
    )
    counts: dict[UUID, dict[str, int]] = {c: {} for c in collection_ids}
    seconds: dict[UUID, float] = {}
    timed: dict[UUID, int] = {}
    for r in rows:
        cid = r["collection_id"]
        counts[cid][r["status"]] = r["n"]
        if r["status"] in ("SUCCEEDED", "FAILED") and r["timed"]:
            seconds[cid] = seconds.get(cid, 0.0) + float(r["seconds"])
            timed[cid] = timed.get(cid, 0) + r["timed"]
    return {c: (counts[c], seconds[c] / timed[c] if c in timed else None) for c in counts}


async def mean_week_seconds(conn: Connection, collection_id: UUID) -> float | None:
    """Mean time from request to outcome of the weeks finished so far (last attempt)."""
    value = await conn.fetchval(
        """SELECT avg(extract(epoch FROM finished_at - requested_at)) FROM collection_weeks
           WHERE collection_id = $1 AND status IN ('SUCCEEDED', 'FAILED')
             AND requested_at IS NOT NULL AND finished_at IS NOT NULL""",
        collection_id,
    )
    return float(value) if value is not None else None


async def list_weeks(
    conn: Connection, collection_id: UUID, *, status: WeekStatus | None
) -> list[WeekRow]:
    rows = await conn.fetch(
        f"""SELECT {_WEEK_COLUMNS} FROM collection_weeks
            WHERE collection_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY seq""",
        collection_id,
        status.value if status else None,
    )
    return [WeekRow.of(r) for r in rows]


async def collection_of_week(conn: Connection, week_id: UUID) -> UUID | None:
    value: UUID | None = await conn.fetchval(
        "SELECT collection_id FROM collection_weeks WHERE id = $1", week_id
    )
    return value


async def lock_week(conn: Connection, week_id: UUID) -> WeekRow | None:
    row = await conn.fetchrow(
        f"SELECT {_WEEK_COLUMNS} FROM collection_weeks WHERE id = $1 FOR UPDATE", week_id
    )
    return WeekRow.of(row) if row else None


async def count_in_flight(conn: Connection, collection_id: UUID) -> int:
    n: int = await conn.fetchval(
        """SELECT count(*) FROM collection_weeks
           WHERE collection_id = $1 AND status IN ('REQUESTED', 'RUNNING')""",
        collection_id,
    )
    return n


async def request_due_weeks(conn: Connection, collection_id: UUID, limit: int) -> list[WeekRow]:
    """Move up to `limit` due PENDING weeks (in week order) to REQUESTED with a new attempt."""
    rows = await conn.fetch(
        f"""UPDATE collection_weeks SET status = 'REQUESTED', attempt = attempt + 1,
                   requested_at = now(), request_count = request_count + 1, not_before = NULL,
                   submitted_at = NULL, finished_at = NULL, execution_id = NULL,
                   amc_execution_id = NULL
            WHERE id IN (SELECT id FROM collection_weeks
                         WHERE collection_id = $1 AND status = 'PENDING'
                           AND (not_before IS NULL OR not_before <= now())
                         ORDER BY seq LIMIT $2 FOR UPDATE)
            RETURNING {_WEEK_COLUMNS}""",
        collection_id,
        limit,
    )
    return sorted((WeekRow.of(r) for r in rows), key=lambda w: w.seq)


async def rerequest_stale_weeks(
    conn: Connection, collection_id: UUID, older_than_s: float
) -> list[WeekRow]:
    """Stamp REQUESTED weeks older than the threshold as requested again (same attempt)."""
    rows = await conn.fetch(
        f"""UPDATE collection_weeks SET requested_at = now(), request_count = request_count + 1
            WHERE collection_id = $1 AND status = 'REQUESTED'
              AND requested_at < now() - make_interval(secs => $2)
            RETURNING {_WEEK_COLUMNS}""",
        collection_id,
        older_than_s,
    )
    return [WeekRow.of(r) for r in rows]


async def mark_running(
    conn: Connection, week_id: UUID, execution_id: UUID, amc_execution_id: str
) -> None:
    await conn.execute(
        """UPDATE collection_weeks SET status = 'RUNNING', submitted_at = now(),
                  execution_id = $2, amc_execution_id = $3
           WHERE id = $1""",
        week_id,
        execution_id,
        amc_execution_id,
    )


async def mark_succeeded(
    conn: Connection,
    week_id: UUID,
    execution_id: UUID,
    amc_execution_id: str | None,
    result: ResultLocation | None,
) -> None:
    await conn.execute(
        """UPDATE collection_weeks SET status = 'SUCCEEDED', finished_at = now(),
                  execution_id = $2, amc_execution_id = coalesce($3, amc_execution_id),
                  result_uri = $4, row_count = $5, error_code = NULL, error_message = NULL
           WHERE id = $1""",
        week_id,
        execution_id,
        amc_execution_id,
        result.uri if result else None,
        result.row_count if result else None,
    )


async def mark_failed(
    conn: Connection,
    week_id: UUID,
    execution_id: UUID,
    amc_execution_id: str | None,
    error: ExecutionError | None,
    *,
    retry_in_s: float | None,
) -> None:
    """Record a failure: back to PENDING after a wait when `retry_in_s` is set, else FAILED."""
    await conn.execute(
        """UPDATE collection_weeks SET
                  status = CASE WHEN $6::float8 IS NULL THEN 'FAILED' ELSE 'PENDING' END,
                  not_before = CASE WHEN $6::float8 IS NULL THEN NULL
                                    ELSE now() + make_interval(secs => $6) END,
                  finished_at = now(), execution_id = $2,
                  amc_execution_id = coalesce($3, amc_execution_id),
                  error_code = $4, error_message = $5
           WHERE id = $1""",
        week_id,
        execution_id,
        amc_execution_id,
        error.code if error else "INTERNAL",
        error.message if error else "failed without an error",
        retry_in_s,
    )


async def cancel_pending_weeks(conn: Connection, collection_id: UUID) -> int:
    result = await conn.execute(
        """UPDATE collection_weeks SET status = 'CANCELLED', not_before = NULL
           WHERE collection_id = $1 AND status = 'PENDING'""",
        collection_id,
    )
    return int(result.split()[-1])


async def weeks_not_failed(
    conn: Connection, collection_id: UUID, week_ids: Sequence[UUID]
) -> list[str]:
    """Of the chosen weeks, those that are not FAILED (or not in this collection)."""
    rows = await conn.fetch(
        """SELECT chosen.id::text AS id, w.status FROM unnest($2::uuid[]) AS chosen (id)
           LEFT JOIN collection_weeks w ON w.id = chosen.id AND w.collection_id = $1
           WHERE w.status IS DISTINCT FROM 'FAILED'""",
        collection_id,
        list(week_ids),
    )
    return [f"{r['id']} ({r['status'] or 'not in this collection'})" for r in rows]


async def reset_failed_weeks(
    conn: Connection, collection_id: UUID, week_ids: Sequence[UUID] | None, extra_attempts: int
) -> int:
    """FAILED weeks (all, or the chosen ones) back to PENDING with `extra_attempts` more."""
    result = await conn.execute(
        """UPDATE collection_weeks SET status = 'PENDING', attempt_limit = attempt + $3,
                  not_before = NULL, error_code = NULL, error_message = NULL
           WHERE collection_id = $1 AND status = 'FAILED'
             AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))""",
        collection_id,
        list(week_ids) if week_ids is not None else None,
        extra_attempts,
    )
    return int(result.split()[-1])


# --- executions of weeks ----------------------------------------------------------------------


@dataclass(frozen=True)
class KnownExecution:
    attempt: int
    status: str

    @property
    def finished(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


async def known_execution(conn: Connection, execution_id: UUID) -> KnownExecution | None:
    row = await conn.fetchrow(
        "SELECT attempt, status FROM week_executions WHERE execution_id = $1", execution_id
    )
    return KnownExecution(row["attempt"], row["status"]) if row else None


async def record_execution(
    conn: Connection, execution_id: UUID, week_id: UUID, attempt: int, status: str
) -> None:
    await conn.execute(
        """INSERT INTO week_executions (execution_id, week_id, attempt, status)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (execution_id) DO UPDATE SET status = $4, recorded_at = now()""",
        execution_id,
        week_id,
        attempt,
        status,
    )
