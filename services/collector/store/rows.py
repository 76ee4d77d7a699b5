"""The collector's rows as the store hands them out: typed, one field per selected column."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from pydantic import Field

from services.collector.logic import CollectionStatus, WeekStatus


def shown(row: object, part: type[Any]) -> dict[str, Any]:
    """The row's values of the fields of `part` (a dataclass the row's class extends)."""
    return {f.name: getattr(row, f.name) for f in fields(part)}


@dataclass(frozen=True)
class ShownCollection:
    """The columns of a collection that the API shows as they are (`api.CollectionOut`), so
    the two lists cannot drift apart."""

    id: UUID
    status: CollectionStatus
    run: dict[str, Any]
    start_date: date
    end_date: date
    week_start_day: str
    time_zone: str
    max_attempts: int
    daily_share: Annotated[
        int, Field(description="Weeks submitted per UTC day at most; 0: no share")
    ]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class CollectionRow(ShownCollection):
    queue_seq: int
    max_in_flight: int
    weeks_total: int
    granularity: str
    # W3C carrier of the trace that created the collection ({} if none): weeks link to it.
    trace_context: dict[str, str]

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
