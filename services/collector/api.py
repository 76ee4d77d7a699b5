"""Management API under /collections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from services.collector import store
from services.collector.logic import (
    CollectionStatus,
    Granularity,
    WeekStatus,
    is_time_zone,
    parse_week_start_day,
    progress,
    validate_collection,
    week_window,
)
from services.collector.operations import ConflictError, NewCollection, NotFoundError
from services.collector.runtime import CollectorRuntime, RuntimeDep
from services.collector.store import CollectionRow, ShownCollection, ShownWeek, WeekRow, shown
from shared.dates import CheckedParameters
from shared.not_found import found
from shared.outbox import Connection
from shared.run_target import RunTarget, target_json

router = APIRouter(prefix="/collections", tags=["collections"])


class CollectionCreate(RunTarget):
    """A historical collection: one workflow run per week of [start_date, end_date]. It runs
    a saved workflow (`workflow_id`) or inline SQL (`sql_query`), exactly one; advertiser and
    marketplace together or neither (the poller's instance registry then gives them);
    `options` are AMC's run options, passed through to every week's run."""

    model_config = ConfigDict(extra="forbid")

    output_format: str = Field(default="CSV", pattern="^CSV$")
    parameters: CheckedParameters = Field(
        default_factory=dict,
        description="Workflow parameters. A string value starting with NAME( is a date"
        " expression (TODAY(n), FIRSTDAYOFOFFSETMONTH(n), ... see docs/schedules.md), evaluated"
        " for each slice at the end of its window (local midnight after its last day) in"
        " `time_zone`: TODAY(-1) is the slice's last day. Invalid ones are refused.",
    )
    start_date: date = Field(description="First day (inclusive)")
    end_date: date = Field(description="Last day (inclusive)")
    week_start_day: str = Field(default="MONDAY", description="MONDAY or SUNDAY")
    time_zone: str = Field(default="UTC", description="IANA zone of the weekly AMC windows")
    granularity: Granularity = Field(
        default=Granularity.WEEK,
        description="One execution per DAY, WEEK (aligned to week_start_day) or calendar"
        " MONTH; the first and last slice are clipped to the range. Slices are the"
        " collection's 'weeks' in the API and events whatever their length.",
    )
    max_weeks_in_flight: int | None = Field(default=None, ge=1, le=100)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    daily_share: int | None = Field(
        default=None,
        ge=0,
        description="Weeks submitted to AMC per UTC day at most: the collection's share of the"
        " instance's daily cap (AMC documents 30 a day per instance); scheduled and external"
        " runs come first whatever the share. 0: no share of its own. Default:"
        " COLLECTOR_DEFAULT_DAILY_SHARE",
    )


class ProgressOut(BaseModel):
    counts: dict[str, int] = Field(description="Weeks per state")
    total: int
    done: int = Field(description="Weeks in a final state (succeeded, failed, cancelled)")
    in_flight: int
    percent_done: float
    estimated_seconds_left: float | None = Field(
        description="Rough estimate from the mean week duration so far, no less than the days"
        " the daily share needs; null until one ends"
    )
    days_at_share: int | None = Field(
        description="UTC days the weeks not yet submitted take at the daily share; null"
        " without a share"
    )
    cap_estimate: str = Field(description='For people: "156 week(s) at 20 a day: 8 day(s)"')


@dataclass(frozen=True)
class CollectionOut(ShownCollection):
    """A collection as the API shows it: its row's shown columns, with the API's own names
    for the rest, and its progress."""

    granularity: Granularity
    max_weeks_in_flight: int
    progress: ProgressOut


@dataclass(frozen=True)
class WeekOut(ShownWeek):
    """A week as the API shows it: its row's shown columns, its window and retry time."""

    time_window_start: datetime
    time_window_end: datetime
    retry_not_before: datetime | None


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    week_ids: list[UUID] | None = Field(
        default=None, min_length=1, description="Weeks to retry; all FAILED weeks when absent"
    )


class RetryOut(BaseModel):
    collection_id: UUID
    weeks_retried: int


async def _out(conn: Connection, c: CollectionRow) -> CollectionOut:
    counts = await store.week_counts(conn, c.id)
    mean = await store.mean_week_seconds(conn, c.id)
    return _view(c, counts, mean)


def _view(c: CollectionRow, counts: dict[str, int], mean: float | None) -> CollectionOut:
    p = progress(
        counts,
        total=c.weeks_total,
        max_in_flight=c.max_in_flight,
        mean_week_seconds=mean,
        finished=c.finished_at is not None,
        daily_share=c.daily_share,
    )
    return CollectionOut(
        **shown(c, ShownCollection),
        granularity=Granularity(c.granularity),
        max_weeks_in_flight=c.max_in_flight,
        progress=ProgressOut.model_validate(p, from_attributes=True),
    )


def _week_out(w: WeekRow, time_zone: str) -> WeekOut:
    start, end = week_window(w.week_start, w.week_end, time_zone)
    return WeekOut(
        **shown(w, ShownWeek),
        time_window_start=start,
        time_window_end=end,
        retry_not_before=w.not_before,
    )


async def _get(runtime: CollectorRuntime, collection_id: UUID) -> CollectionOut:
    async with runtime.pool.acquire() as conn:
        c = await store.get_collection(conn, collection_id)
        return await _out(conn, found(c, f"collection {collection_id} not found"))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CollectionOut)
async def create_collection(body: CollectionCreate, runtime: RuntimeDep) -> CollectionOut:
    settings = runtime.collector_settings
    zone = body.time_zone if is_time_zone(body.time_zone) else "UTC"
    problems = validate_collection(
        start_date=body.start_date,
        end_date=body.end_date,
        week_start_day=body.week_start_day,
        time_zone=body.time_zone,
        today=datetime.now(ZoneInfo(zone)).date(),
        max_range_days=settings.max_range_days,
        data_lag_days=settings.data_lag_days,
    )
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", p.field), "msg": p.message, "type": "value_error"} for p in problems]
        )
    week_start_day = parse_week_start_day(body.week_start_day)
    assert week_start_day is not None
    run = target_json(body) | {"parameters": body.parameters}
    collection_id = await runtime.operations.create(
        NewCollection(
            run=run,
            start_date=body.start_date,
            end_date=body.end_date,
            week_start_day=week_start_day,
            time_zone=body.time_zone,
            max_in_flight=body.max_weeks_in_flight or settings.default_max_weeks_in_flight,
            max_attempts=body.max_attempts or settings.default_max_attempts,
            granularity=body.granularity,
            daily_share=(
                settings.default_daily_share if body.daily_share is None else body.daily_share
            ),
        )
    )
    return await _get(runtime, collection_id)


@router.get("", response_model=list[CollectionOut])
async def list_collections(
    runtime: RuntimeDep,
    status_: Annotated[CollectionStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[CollectionOut]:
    async with runtime.pool.acquire() as conn:
        rows = await store.list_collections(conn, status=status_, limit=limit, offset=offset)
        progress_of = await store.progress_of(conn, [c.id for c in rows])
    return [_view(c, *progress_of[c.id]) for c in rows]


@router.get("/{collection_id}", response_model=CollectionOut)
async def get_collection(collection_id: UUID, runtime: RuntimeDep) -> CollectionOut:
    return await _get(runtime, collection_id)


@router.get("/{collection_id}/weeks", response_model=list[WeekOut])
async def list_weeks(
    collection_id: UUID,
    runtime: RuntimeDep,
    status_: Annotated[WeekStatus | None, Query(alias="status")] = None,
) -> list[WeekOut]:
    async with runtime.pool.acquire() as conn:
        c = found(
            await store.get_collection(conn, collection_id), f"collection {collection_id} not found"
        )
        weeks = await store.list_weeks(conn, collection_id, status=status_)
    return [_week_out(w, c.time_zone) for w in weeks]


async def _act(
    runtime: CollectorRuntime, collection_id: UUID, action: Callable[[UUID], Awaitable[None]]
) -> CollectionOut:
    try:
        await action(collection_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return await _get(runtime, collection_id)


@router.post("/{collection_id}/pause", response_model=CollectionOut)
async def pause(collection_id: UUID, runtime: RuntimeDep) -> CollectionOut:
    """Stop dispatching new weeks (weeks in flight finish); frees the collection's slot."""
    return await _act(runtime, collection_id, runtime.operations.pause)


@router.post("/{collection_id}/resume", response_model=CollectionOut)
async def resume(collection_id: UUID, runtime: RuntimeDep) -> CollectionOut:
    """Queue the collection again at its place; it dispatches once it has a slot."""
    return await _act(runtime, collection_id, runtime.operations.resume)


@router.post("/{collection_id}/cancel", response_model=CollectionOut)
async def cancel(collection_id: UUID, runtime: RuntimeDep) -> CollectionOut:
    """No new weeks; weeks in flight finish and are recorded."""
    return await _act(runtime, collection_id, runtime.operations.cancel)


@router.post("/{collection_id}/retry", response_model=RetryOut)
async def retry(
    collection_id: UUID, runtime: RuntimeDep, body: RetryRequest | None = None
) -> RetryOut:
    """Retry FAILED weeks (all, or `week_ids`) with the collection's attempts again."""
    try:
        n = await runtime.operations.retry(collection_id, body.week_ids if body else None)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return RetryOut(collection_id=collection_id, weeks_retried=n)
