"""The collector's rows as the store hands them out: typed, one field per selected column."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.collector.logic import CollectionStatus, WeekStatus


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
class ShownWeek:
    """The columns of a week that the API shows as they are (`api.WeekOut`), so the two
    lists cannot drift apart."""

    id: UUID
    seq: int
    week_start: date
    week_end: date
    status: WeekStatus
    attempt: int
    attempt_limit: int
    requested_at: datetime | None
    submitted_at: datetime | None
    finished_at: datetime | None
    execution_id: UUID | None
    amc_execution_id: str | None
    error_code: str | None
    error_message: str | None
    result_uri: str | None
    row_count: int | None


@dataclass(frozen=True)
class WeekRow(ShownWeek):
    collection_id: UUID
    not_before: datetime | None
    request_count: int

    @classmethod
    def of(cls, r: asyncpg.Record) -> WeekRow:
        """From a row with (at least) the week's columns: a query may select more."""
        values = {f.name: r[f.name] for f in fields(cls)}
        return cls(**{**values, "status": WeekStatus(r["status"])})


@dataclass(frozen=True)
class KnownExecution:
    attempt: int
    status: str

    @property
    def finished(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
