"""SQL of the `schedules` table: a person's schedules (create, change, pause, resume) and the
firing loop's claim of due ones.

Hot-path statements (claim, advancing next fire times) work on whole batches with arrays and
`unnest`, so a burst of thousands of due schedules costs a few round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from services.scheduler.store.paging import Paging, page
from services.scheduler.store.rows import DueSchedule, Schedule
from services.scheduler.timing import CatchUpPolicy, OverlapPolicy
from shared.dates import WeekStart
from shared.outbox import Connection

SCHEDULE_COLUMNS = """id, name, user_id, instance_id, advertiser_id, marketplace_id, workflow_id,
    sql_query, run_options, output_format, parameters, timezone, spec, window_rule,
    catch_up_policy, overlap_policy, week_start, retry_policy, state, paused_reason, paused_at,
    consecutive_failures, next_fire_at, last_fire_at, created_at, updated_at"""


@dataclass(frozen=True)
class ScheduleValues:
    """Every column a person sets on a schedule (create and update write them all)."""

    name: str | None
    user_id: str
    instance_id: str
    advertiser_id: str | None
    marketplace_id: str | None
    workflow_id: str | None
    output_format: Literal["CSV"]
    parameters: dict[str, Any]
    timezone: str
    spec: dict[str, Any]
    window_rule: dict[str, Any]
    catch_up_policy: CatchUpPolicy
    overlap_policy: OverlapPolicy
    week_start: WeekStart
    retry_policy: dict[str, Any] | None
    sql_query: str | None
    run_options: dict[str, Any]

    def args(self) -> tuple[Any, ...]:
        """The values in field order: the order of the columns the INSERT and UPDATE name."""
        return astuple(self)


# --- a person's schedules ------------------------------------------------------------------


async def insert_schedule(
    conn: Connection,
    schedule_id: UUID,
    values: ScheduleValues,
    next_fire_at: datetime | None,
    now: datetime,
) -> Schedule:
    row: asyncpg.Record | None = await conn.fetchrow(
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
    return Schedule.of(row)


async def get_schedule(
    conn: Connection, schedule_id: UUID, *, lock: bool = False
) -> Schedule | None:
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1{suffix}", schedule_id
    )
    return Schedule.of(row) if row is not None else None


async def list_schedules(
    conn: Connection,
    *,
    user_id: str | None,
    instance_id: str | None,
    state: str | None,
    paging: Paging,
) -> tuple[list[Schedule], int]:
    where = """($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR instance_id = $2)
               AND ($3::text IS NULL OR state = $3)"""
    rows, total = await page(
        conn,
        SCHEDULE_COLUMNS,
        "schedules",
        where,
        "created_at, id",
        (user_id, instance_id, state),
        paging,
    )
    return [Schedule.of(r) for r in rows], total


async def update_schedule(
    conn: Connection,
    schedule_id: UUID,
    values: ScheduleValues,
    next_fire_at: datetime | None,
    now: datetime,
) -> Schedule:
    return await _change(
        conn,
        schedule_id,
        """name = $2, user_id = $3, instance_id = $4, advertiser_id = $5, marketplace_id = $6,
           workflow_id = $7, output_format = $8, parameters = $9, timezone = $10, spec = $11,
           window_rule = $12, catch_up_policy = $13, overlap_policy = $14, week_start = $15,
           retry_policy = $16, sql_query = $17, run_options = $18, next_fire_at = $19,
           updated_at = $20""",
        *values.args(),
        next_fire_at,
        now,
    )


async def _change(conn: Connection, schedule_id: UUID, assignments: str, *args: object) -> Schedule:
    """One schedule's row after `UPDATE ... SET assignments` ($1 is its id, `args` from $2)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"UPDATE schedules SET {assignments} WHERE id = $1 RETURNING {SCHEDULE_COLUMNS}",
        schedule_id,
        *args,
    )
    assert row is not None
    return Schedule.of(row)


async def delete_schedule(conn: Connection, schedule_id: UUID) -> bool:
    deleted = await conn.fetchval("DELETE FROM schedules WHERE id = $1 RETURNING true", schedule_id)
    return bool(deleted)


async def pause(conn: Connection, schedule_id: UUID, reason: str, now: datetime) -> Schedule:
    return await _change(
        conn,
        schedule_id,
        "state = 'PAUSED', paused_reason = $2, paused_at = $3, updated_at = $3",
        reason,
        now,
    )


async def resume(
    conn: Connection, schedule_id: UUID, next_fire_at: datetime | None, now: datetime
) -> Schedule:
    return await _change(
        conn,
        schedule_id,
        """state = 'ACTIVE', paused_reason = NULL, paused_at = NULL, consecutive_failures = 0,
           next_fire_at = $2, updated_at = $3""",
        next_fire_at,
        now,
    )


# --- firing --------------------------------------------------------------------------------


async def claim_due(conn: Connection, now: datetime, limit: int) -> list[DueSchedule]:
    """Lock up to `limit` due schedules, earliest first; rows other replicas hold are skipped."""
    return [
        DueSchedule.of(r)
        for r in await conn.fetch(
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
    ]


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


async def count_due(conn: Connection | asyncpg.Pool[Any], at: datetime) -> int:
    """Active schedules due at `at` or before (read from the claim's index)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM schedules WHERE state = 'ACTIVE' AND next_fire_at <= $1", at
    )
    return int(count)


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


async def set_failures(conn: Connection, schedule_id: UUID, count: int) -> None:
    await conn.execute(
        "UPDATE schedules SET consecutive_failures = $2 WHERE id = $1", schedule_id, count
    )
