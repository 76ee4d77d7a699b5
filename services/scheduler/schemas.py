"""Request and response models of the management API (the OpenAPI document comes from these)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from services.scheduler.logic import RunState, ScheduleState
from services.scheduler.retries import RetryPolicy
from services.scheduler.store import Paging, Run
from services.scheduler.timing import (
    AmcWindow,
    CatchUpPolicy,
    OverlapPolicy,
    Preset,
    ScheduleSpec,
    WindowRule,
)
from shared.contract import RunOptions
from shared.dates import CheckedParameters, WeekStart
from shared.run_target import RunTarget

PARAMETERS_DESCRIPTION = (
    "Workflow parameters. A string value (at any depth) that starts with NAME( is a date"
    " expression evaluated at each fire time in the schedule's zone: NOW(), TODAY(n),"
    " FIRSTDAYOFOFFSETMONTH(n), LASTDAYOFOFFSETMONTH(n), FIFTEENTHDAYOFOFFSETMONTH(n),"
    " FIRSTDAYOFOFFSETWEEK(n), LASTDAYOFOFFSETWEEK(n), optionally followed by |DATE,"
    " |DATETIME or a pattern such as |%Y%m%d. A leading backslash sends such a value"
    " literally. An invalid expression is refused, naming the parameter and the position."
)
WEEK_START_DESCRIPTION = (
    "First day of a week for FIRSTDAYOFOFFSETWEEK and LASTDAYOFOFFSETWEEK (default MONDAY)"
)

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]

TIME_RULES = """\
**Time rules.** A schedule fires at UTC instants computed from its local rule (`cron` or
`preset`) in its IANA `timezone`:

- Fire times are strictly increasing, each strictly later than the instant the computation
  starts from (a preview's `after`, or now).
- DST, following cron(8): a schedule whose cron minute or hour field names more than one
  value (`*`, `*/n`, a range, a list) follows the clock: local times skipped by a
  spring-forward are not made up, and both passes of a repeated (fall-back) hour fire. A
  schedule naming one time of day (single minute and hour; every preset) keeps its one run:
  a time in a gap fires once right after the gap, a repeated time once, at its first
  occurrence.
- Cron: 5 fields (minute hour day-of-month month day-of-week); lists, ranges, steps, month and
  weekday names; `L` (last day of the month) in day-of-month; `2#2` (second Tuesday) and `5L`
  (last Friday) in day-of-week. When both day fields are restricted, a day matching EITHER
  fires (standard cron OR semantics). 6- and 7-field expressions (seconds, years) are refused.
- `start_date` and `end_date` are local days in the schedule's zone, both inclusive.

**Firing.** Each fire time yields exactly one `schedule.due` event, whatever the number of
replicas. Fire times missed while the service was down or late by more than the grace period
follow `catch_up_policy`: `latest` (default: one run for the most recent missed fire time if
it is within the catch-up window, 1 hour by default), `all` (every missed fire time, oldest
first, up to a bound), `none`. When the previous run has not finished, `overlap_policy`
decides: `skip` (default), `allow`, or `buffer_one` (the run waits and starts when the
previous one ends). Skipped fire times are kept in the history as SKIPPED runs with the
reason. After 5 consecutive failed runs (FAILED or TIMED_OUT; configurable) the schedule
pauses itself and emits `schedule.paused`; a success resets the count."""


RUN_RULES = """\
**What runs.** A saved workflow (`workflow_id`) or inline SQL (`sql_query`, an ad hoc run),
exactly one. `advertiser_id` and `marketplace_id` together, or neither: the poller then takes
them from its instance registry. `options` are AMC's run options, passed through."""


class ScheduleCreate(ScheduleSpec, RunTarget):
    __doc__ = "A schedule: what to run, and when.\n\n" + TIME_RULES + "\n\n" + RUN_RULES

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=200, description="A label for people")
    output_format: Literal["CSV"] = "CSV"
    parameters: CheckedParameters = Field(default_factory=dict, description=PARAMETERS_DESCRIPTION)
    window: WindowRule = Field(
        default=AmcWindow(type="MOST_RECENT_DAY"),
        description="The AMC time window of each run: an AMC window type (MOST_RECENT_DAY, "
        "MOST_RECENT_WEEK, CURRENT_MONTH, PREVIOUS_MONTH) passed through; LOOKBACK: the "
        "`days` whole local days ending `lag_days` (default 2) days before the fire date; or "
        "EXPRESSION: `start` and `end` (exclusive) as date expressions evaluated at each fire "
        "time in the schedule's zone.",
    )
    catch_up_policy: CatchUpPolicy = "latest"
    overlap_policy: OverlapPolicy = "skip"
    week_start: WeekStart = Field(default="MONDAY", description=WEEK_START_DESCRIPTION)
    retry: RetryPolicy | None = Field(
        default=None,
        description="Retries of a failed run (only failures marked retryable): each a new"
        " attempt of the same fire time with the same window and parameters. None: no retries.",
    )

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.model_validate(
            self.model_dump(include=set(SPEC_FIELDS), exclude_none=True)
        )


SPEC_FIELDS = frozenset(ScheduleSpec.model_fields)


class ScheduleUpdate(BaseModel):
    """A partial update: only the fields given change. Giving `cron` clears `preset` and the
    other way round; giving `workflow_id` clears `sql_query` and the other way round. A
    change to when the schedule fires recomputes its next fire time from now."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    user_id: NonEmpty | None = None
    instance_id: NonEmpty | None = None
    advertiser_id: NonEmpty | None = None
    marketplace_id: NonEmpty | None = None
    workflow_id: NonEmpty | None = None
    sql_query: str | None = Field(default=None, min_length=1, max_length=200_000)
    output_format: Literal["CSV"] | None = None
    parameters: dict[str, JsonValue] | None = None
    options: RunOptions | None = Field(
        default=None, description="Replaces the run options as a whole; null clears them"
    )
    timezone: str | None = None
    cron: str | None = None
    preset: Preset | None = None
    start_date: date | None = None
    end_date: date | None = None
    window: WindowRule | None = None
    catch_up_policy: CatchUpPolicy | None = None
    overlap_policy: OverlapPolicy | None = None
    week_start: WeekStart | None = None
    retry: RetryPolicy | None = None


class ScheduleOut(BaseModel):
    id: UUID
    name: str | None
    state: ScheduleState
    paused_reason: str | None
    paused_at: datetime | None
    consecutive_failures: int
    next_fire_at: datetime | None = Field(description="UTC; null once the end date is past")
    next_fire_local: datetime | None = Field(description="next_fire_at in the schedule's zone")
    last_fire_at: datetime | None
    user_id: str
    instance_id: str
    advertiser_id: str | None
    marketplace_id: str | None
    workflow_id: str | None
    sql_query: str | None
    output_format: str
    parameters: dict[str, Any]
    options: RunOptions
    timezone: str
    cron: str | None
    preset: dict[str, Any] | None
    start_date: date | None
    end_date: date | None
    window: dict[str, Any]
    catch_up_policy: CatchUpPolicy
    overlap_policy: OverlapPolicy
    week_start: WeekStart
    retry: RetryPolicy | None
    created_at: datetime
    updated_at: datetime


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list and where the next one starts."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last")

    @classmethod
    def of(cls, items: list[Item], total: int, paging: Paging) -> Self:
        end = paging.offset + len(items)
        return cls(
            items=items,
            total=total,
            limit=paging.limit,
            offset=paging.offset,
            next_offset=end if end < total else None,
        )


class SchedulePage(Page[ScheduleOut]):
    pass


@dataclass(frozen=True, slots=True)
class RunOut(Run):
    """A run as the API shows it: its stored row, field for field (one list of fields, so the
    two cannot drift apart; the row marks what is not shown)."""

    @classmethod
    def of_run(cls, row: Run) -> RunOut:
        return cls(**{f.name: getattr(row, f.name) for f in fields(row)})


class RunPage(Page[RunOut]):
    items: list[RunOut] = Field(description="Newest fire time first")


class StatsOut(BaseModel):
    schedule_id: UUID
    state: ScheduleState
    runs: int = Field(description="All runs, skipped ones included")
    succeeded: int
    failed: int = Field(description="FAILED and TIMED_OUT")
    cancelled: int
    skipped: int
    in_flight: int = Field(description="BUFFERED, EMITTED or SUBMITTED")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + cancelled); null before any outcome"
    )
    consecutive_failures: int
    last_run_at: datetime | None = Field(description="Fire time of the latest run not skipped")
    last_run_state: RunState | None
    next_fire_at: datetime | None
    mean_duration_s: float | None = Field(description="Mean time from emission to completion")


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=1000, description="Why, for the record")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        default=False, description="Trigger even within 5 minutes of the last manual trigger"
    )


class RerunRequest(BaseModel):
    """Re-run failed runs (FAILED, TIMED_OUT): each one more attempt of its fire time, with the
    window and parameters it was first sent with."""

    model_config = ConfigDict(extra="forbid")

    failed: Literal[True] = Field(
        default=True, description="Re-run failed runs (the only selection so far)"
    )
    since: AwareDatetime = Field(description="Only runs whose fire time is at or after this")
    run_ids: list[UUID] | None = Field(
        default=None, min_length=1, max_length=500, description="Only these runs"
    )


class RerunOut(BaseModel):
    schedule_id: UUID
    rerun: int = Field(description="Runs sent again")
    runs: list[RunOut]


class PreviewItem(BaseModel):
    utc: str = Field(description="ISO 8601 instant in UTC")
    local: str = Field(description="The same instant in the schedule's zone, with its offset")
    time_window_type: str | None = Field(
        default=None, description="The run's AMC window type (when a window is known)"
    )
    time_window_start: str | None = Field(
        default=None, description="Wall time in the schedule's zone, inclusive"
    )
    time_window_end: str | None = Field(
        default=None, description="Wall time in the schedule's zone, exclusive"
    )
    parameters: dict[str, JsonValue] | None = Field(
        default=None, description="Parameter values as that run sends them"
    )


class PreviewOut(BaseModel):
    timezone: str
    after: datetime
    items: list[PreviewItem]


class PreviewRequest(ScheduleSpec):
    """A schedule's "when" to preview without creating it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=10, ge=1, le=1000)
    after: AwareDatetime | None = Field(default=None, description="Default: now")
    parameters: CheckedParameters | None = Field(
        default=None, description="Parameters to evaluate at each fire time (optional)"
    )
    window: WindowRule | None = Field(
        default=None, description="Window rule to evaluate at each fire time (optional)"
    )
    week_start: WeekStart = Field(default="MONDAY", description=WEEK_START_DESCRIPTION)

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.model_validate(
            self.model_dump(include=set(SPEC_FIELDS), exclude_none=True)
        )
