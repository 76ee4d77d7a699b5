"""SQL of the `collections` table: a collection's life (insert, status), the global
admission queue, and what the maintenance loop looks for.

Every change to a collection's weeks happens with the collection row locked (FOR UPDATE), so
counting the weeks in flight and dispatching more is safe with any number of replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

from services.collector.logic import CollectionStatus, WeekSlice
from services.collector.store.rows import CollectionRow
from shared.outbox import Connection

ADMISSION_LOCK = "amc-collector-admission"

_COLLECTION_COLUMNS = """id, queue_seq, status, run, start_date, end_date, week_start_day,
    time_zone, max_in_flight, max_attempts, weeks_total, granularity, created_at, updated_at,
    started_at, finished_at, trace_context, daily_share"""


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


async def lock_collections_of_weeks(
    conn: Connection, week_ids: Sequence[UUID]
) -> dict[UUID, CollectionRow]:
    """`lock_collection` of the collections the weeks belong to, in id order (the order every
    multi-collection lock takes, so that two of them cannot deadlock), by id; a week that
    does not exist adds none."""
    rows = await conn.fetch(
        f"""SELECT {_COLLECTION_COLUMNS} FROM collections
            WHERE id IN (SELECT collection_id FROM collection_weeks WHERE id = ANY($1::uuid[]))
            ORDER BY id FOR UPDATE""",
        list(week_ids),
    )
    return {r["id"]: CollectionRow.of(r) for r in rows}


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
