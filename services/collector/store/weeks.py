"""SQL of the `collection_weeks` and `week_executions` tables: a collection's weeks from
request through outcome and retry, their progress, and the executions that ran them.

Callers hold the collection's row lock (see collections.py) while they change its weeks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from uuid import UUID

from services.collector.logic import WeekStatus
from services.collector.store.rows import KnownExecution, WeekRow
from shared.contract import ExecutionError, ResultLocation
from shared.db.status import rows_affected
from shared.outbox import Connection

_WEEK_FIELDS = [f.name for f in fields(WeekRow)]
_WEEK_COLUMNS = ", ".join(_WEEK_FIELDS)
_WEEK_COLUMNS_OF_W = ", ".join(f"w.{name}" for name in _WEEK_FIELDS)


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


async def lock_weeks(
    conn: Connection, executions: Sequence[tuple[UUID, UUID]]
) -> dict[UUID, tuple[WeekRow, KnownExecution | None]]:
    """Of each (week id, execution id): the week (locked, in id order) and what is known of
    that execution of it, in one round trip for all. Read after their collections are
    locked, so each is the state the last holder of those locks left; absent weeks are left
    out."""
    rows = await conn.fetch(
        f"""SELECT {_WEEK_COLUMNS_OF_W}, e.attempt AS known_attempt, e.status AS known_status
            FROM unnest($1::uuid[], $2::uuid[]) AS asked (week_id, execution_id)
            JOIN collection_weeks w ON w.id = asked.week_id
            LEFT JOIN week_executions e ON e.execution_id = asked.execution_id
            ORDER BY w.id FOR UPDATE OF w""",
        [week_id for week_id, _ in executions],
        [execution_id for _, execution_id in executions],
    )
    found: dict[UUID, tuple[WeekRow, KnownExecution | None]] = {}
    for row in rows:
        known = row["known_attempt"]
        found[row["id"]] = (
            WeekRow.of(row),
            KnownExecution(known, row["known_status"]) if known is not None else None,
        )
    return found


async def request_due_weeks(
    conn: Connection, collection_id: UUID, max_in_flight: int
) -> list[WeekRow]:
    """Move due PENDING weeks (in week order) to REQUESTED with a new attempt, as many as
    keep the weeks in flight within `max_in_flight`: the count and the change are one round
    trip, which matters because every completion of a week asks for the next."""
    rows = await conn.fetch(
        f"""UPDATE collection_weeks SET status = 'REQUESTED', attempt = attempt + 1,
                   requested_at = now(), request_count = request_count + 1, not_before = NULL,
                   submitted_at = NULL, finished_at = NULL, execution_id = NULL,
                   amc_execution_id = NULL
            WHERE id IN (SELECT id FROM collection_weeks
                         WHERE collection_id = $1 AND status = 'PENDING'
                           AND (not_before IS NULL OR not_before <= now())
                         ORDER BY seq
                         LIMIT greatest($2 - (SELECT count(*) FROM collection_weeks
                                              WHERE collection_id = $1
                                                AND status IN ('REQUESTED', 'RUNNING')), 0)
                         FOR UPDATE)
            RETURNING {_WEEK_COLUMNS}""",
        collection_id,
        max_in_flight,
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


@dataclass(frozen=True)
class Submission:
    """An execution that started the current attempt of its week."""

    week_id: UUID
    attempt: int
    execution_id: UUID
    amc_execution_id: str


@dataclass(frozen=True)
class Outcome:
    """How an execution of a week ended, and where that leaves the week: SUCCEEDED, FAILED,
    or PENDING again for a retry after `retry_in_s`."""

    week_id: UUID
    attempt: int
    execution_id: UUID
    execution_status: str
    week_status: WeekStatus
    amc_execution_id: str | None
    result: ResultLocation | None = None
    error: ExecutionError | None = None
    retry_in_s: float | None = None


# Executions are recorded with their weeks' changes in one statement: the executions' rows
# (which attempt each ran, where it ended), then the weeks. Every completion of a week asks
# for the next, so a batch of them costs one round trip here, not one each.
_RECORD_EXECUTIONS = """WITH recorded AS (
    INSERT INTO week_executions (execution_id, week_id, attempt, status)
    SELECT execution_id, week_id, attempt, status
    FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[])
         AS e (week_id, execution_id, attempt, status)
    ON CONFLICT (execution_id) DO UPDATE SET status = excluded.status, recorded_at = now())
"""


async def mark_running(conn: Connection, submissions: Sequence[Submission]) -> None:
    await conn.execute(
        _RECORD_EXECUTIONS
        + """UPDATE collection_weeks w SET status = 'RUNNING', submitted_at = now(),
                    execution_id = s.execution_id, amc_execution_id = s.amc_execution_id
             FROM unnest($1::uuid[], $2::uuid[], $5::text[])
                  AS s (week_id, execution_id, amc_execution_id)
             WHERE w.id = s.week_id""",
        [s.week_id for s in submissions],
        [s.execution_id for s in submissions],
        [s.attempt for s in submissions],
        ["RUNNING"] * len(submissions),
        [s.amc_execution_id for s in submissions],
    )


async def mark_finished(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """Record outcomes: a success keeps its result and clears the error; a failure keeps the
    error, and goes back to PENDING until `retry_in_s` has passed when it is to be retried."""
    await conn.execute(
        _RECORD_EXECUTIONS
        + """UPDATE collection_weeks w SET
                    status = o.week_status,
                    not_before = CASE WHEN o.week_status = 'SUCCEEDED' THEN w.not_before
                                      WHEN o.retry_in_s IS NULL THEN NULL
                                      ELSE now() + make_interval(secs => o.retry_in_s) END,
                    finished_at = now(), execution_id = o.execution_id,
                    amc_execution_id = coalesce(o.amc_execution_id, w.amc_execution_id),
                    result_uri = CASE WHEN o.week_status = 'SUCCEEDED' THEN o.result_uri
                                      ELSE w.result_uri END,
                    row_count = CASE WHEN o.week_status = 'SUCCEEDED' THEN o.row_count
                                     ELSE w.row_count END,
                    error_code = o.error_code, error_message = o.error_message
             FROM unnest($1::uuid[], $2::uuid[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::text[], $10::text[], $11::float8[])
                  AS o (week_id, execution_id, week_status, amc_execution_id, result_uri,
                        row_count, error_code, error_message, retry_in_s)
             WHERE w.id = o.week_id""",
        [o.week_id for o in outcomes],
        [o.execution_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.execution_status for o in outcomes],
        [o.week_status.value for o in outcomes],
        [o.amc_execution_id for o in outcomes],
        [o.result.uri if o.result else None for o in outcomes],
        [o.result.row_count if o.result else None for o in outcomes],
        [_error(o)[0] for o in outcomes],
        [_error(o)[1] for o in outcomes],
        [o.retry_in_s for o in outcomes],
    )


def _error(o: Outcome) -> tuple[str | None, str | None]:
    if o.week_status is WeekStatus.SUCCEEDED:
        return None, None
    if o.error is None:
        return "INTERNAL", "failed without an error"
    return o.error.code, o.error.message


async def cancel_pending_weeks(conn: Connection, collection_id: UUID) -> int:
    result = await conn.execute(
        """UPDATE collection_weeks SET status = 'CANCELLED', not_before = NULL
           WHERE collection_id = $1 AND status = 'PENDING'""",
        collection_id,
    )
    return rows_affected(result)


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
    return rows_affected(result)
