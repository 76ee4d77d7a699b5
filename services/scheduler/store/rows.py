"""The scheduler's rows as the store hands them out: typed, one field per selected column.

A row is built from an `asyncpg.Record` by column name (`of`), so a column added to a SELECT
without a field here (or the reverse) fails at once, in every test that reads the row. The
Literal types are what the tables' CHECK constraints allow (migrations/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Self
from uuid import UUID

import asyncpg

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
    """A whole `schedule_runs` row (`RUN_COLUMNS`); `run` is the workflow run as sent."""

    id: UUID
    schedule_id: UUID
    fire_time: datetime
    kind: RunKind
    state: RunState
    skip_reason: str | None
    run: dict[str, Any] | None
    event_id: UUID | None
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
    attempt: int
    retry_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        """From emission to completion."""
        if self.completed_at is None or self.emitted_at is None:
            return None
        return (self.completed_at - self.emitted_at).total_seconds()


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
