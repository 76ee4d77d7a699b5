"""The scheduler's rows as the store hands them out: typed, one field per selected column.

A row is built from an `asyncpg.Record` by column name (`of`), so a column added to a SELECT
without a field here (or the reverse) fails at once, in every test that reads the row. The
Literal types are what the tables' CHECK constraints allow (migrations/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self
from uuid import UUID

import asyncpg
from pydantic import Field

from services.scheduler.logic import RunKind, RunState, ScheduleState
from services.scheduler.timing import CatchUpPolicy, OverlapPolicy
from shared.dates import WeekStart


class _Row:
    __slots__ = ()

    @classmethod
    def of(cls, record: asyncpg.Record) -> Self:
        return cls(**record)


@dataclass(frozen=True, slots=True)
class _ScheduleBase(_Row):
    """What a schedule's runs are built from (`runs.template_of`) and its policies: the
    columns every read of a schedule selects."""

    id: UUID
    user_id: str
    instance_id: str
    advertiser_id: str | None
    marketplace_id: str | None
    workflow_id: str | None
    sql_query: str | None
    run_options: dict[str, Any]
    output_format: Literal["CSV"]
    parameters: dict[str, Any]
    catch_up_policy: CatchUpPolicy
    overlap_policy: OverlapPolicy
    week_start: WeekStart


@dataclass(frozen=True, slots=True)
class Schedule(_ScheduleBase):
    """A whole `schedules` row (`SCHEDULE_COLUMNS`)."""

    name: str | None
    timezone: str
    spec: dict[str, Any]
    window_rule: dict[str, Any]
    retry_policy: dict[str, Any] | None
    state: ScheduleState
    paused_reason: str | None
    paused_at: datetime | None
    consecutive_failures: int
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DueSchedule(_ScheduleBase):
    """What the firing loop reads of a due schedule: its spec and window rule as JSON text
    (parsed once per distinct text, see `runs.spec_of`)."""

    spec_text: str
    window_rule_text: str
    next_fire_at: datetime


@dataclass(frozen=True, slots=True)
class Run(_Row):
    """A whole `schedule_runs` row (`RUN_COLUMNS`), which is also what the API shows of a run
    (`schemas.RunOut`), so the field list exists once: the event id stays the scheduler's own
    (not shown) and the duration is derived when the row is read."""

    id: UUID
    schedule_id: UUID
    fire_time: datetime
    kind: RunKind
    state: RunState
    skip_reason: str | None
    run: Annotated[
        dict[str, Any] | None,
        Field(
            description="The workflow run as sent: its concrete time window and parameter values"
        ),
    ]
    event_id: Annotated[UUID | None, Field(exclude=True)]
    execution_id: UUID | None
    amc_execution_id: str | None
    error_code: str | None
    error_message: str | None
    result_uri: str | None
    row_count: int | None
    created_at: datetime
    emitted_at: datetime | None
    submitted_at: datetime | None
    completed_at: datetime | None
    attempt: Annotated[
        int, Field(description="The run's current (or last) attempt, 1 for the first")
    ]
    retry_at: Annotated[
        datetime | None, Field(description="When a RETRYING run's next attempt is due")
    ]
    duration_s: Annotated[float | None, Field(description="From emission to completion")]

    @classmethod
    def of(cls, record: asyncpg.Record) -> Self:
        emitted, completed = record["emitted_at"], record["completed_at"]
        duration = None if completed is None or emitted is None else completed - emitted
        return cls(**record, duration_s=None if duration is None else duration.total_seconds())


@dataclass(frozen=True, slots=True)
class RunStats(_Row):
    """Counts of a schedule's runs by outcome, its latest run and mean duration."""

    runs: int
    succeeded: int
    failed: int
    cancelled: int
    skipped: int
    in_flight: int
    last_run_at: datetime | None
    last_run_state: RunState | None
    mean_duration_s: Decimal | float | None
