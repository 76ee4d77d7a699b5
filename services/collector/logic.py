"""Pure rules of collections: week splitting, validation, attempts, retries and progress.

Weeks. A range [start_date, end_date] (both inclusive) is cut at every week start day
(Monday by default, Sunday allowed). A partial first or last week is clipped to the range,
so a collection never asks AMC for a day outside what the operator asked for. Each week runs
over its own explicit AMC window [week_start 00:00, week_end + 1 day 00:00) in the
collection's time zone.

Attempts and executions. A request's origin is ``{kind: collection, id: <week_id>}`` and it
carries the attempt number; the poller runs exactly one execution per (origin, attempt). A
retry is attempt + 1, so it gets a new execution; the reconciler's re-request repeats the
same attempt and therefore maps to the execution the poller already has. execution.* events
echo only the origin, so the collector remembers each execution id with its attempt and
ignores late events of an earlier attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.contract import ExecutionError


class CollectionStatus(StrEnum):
    QUEUED = "QUEUED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"
    CANCELLED = "CANCELLED"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_COLLECTION


FINISHED_COLLECTION = frozenset(
    {
        CollectionStatus.COMPLETED,
        CollectionStatus.COMPLETED_WITH_FAILURES,
        CollectionStatus.CANCELLED,
    }
)


class WeekStatus(StrEnum):
    PENDING = "PENDING"
    REQUESTED = "REQUESTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


IN_FLIGHT = (WeekStatus.REQUESTED, WeekStatus.RUNNING)
WEEK_STATES = tuple(WeekStatus)


class WeekStartDay(StrEnum):
    MONDAY = "MONDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """Python's weekday number (Monday 0 ... Sunday 6)."""
        return 0 if self is WeekStartDay.MONDAY else 6


@dataclass(frozen=True)
class WeekSlice:
    seq: int
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def split_weeks(start: date, end: date, week_start_day: WeekStartDay) -> list[WeekSlice]:
    """Weeks aligned to the week start day, the first and last clipped to [start, end]."""
    if end < start:
        raise ValueError("end before start")
    aligned = start - timedelta(days=(start.weekday() - week_start_day.weekday) % 7)
    weeks: list[WeekSlice] = []
    week_begin = aligned
    while week_begin <= end:
        week_end = week_begin + timedelta(days=6)
        weeks.append(WeekSlice(len(weeks), max(week_begin, start), min(week_end, end)))
        week_begin += timedelta(days=7)
    return weeks


class Granularity(StrEnum):
    """How a collection's range is sliced: one execution per day, week (default) or month."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


def split_range(
    start: date, end: date, granularity: Granularity, week_start_day: WeekStartDay
) -> list[WeekSlice]:
    """The range's slices: single days; weeks aligned to the week start day; or calendar
    months. The first and last slice are clipped to [start, end], as weeks always were."""
    if granularity is Granularity.WEEK:
        return split_weeks(start, end, week_start_day)
    if end < start:
        raise ValueError("end before start")
    slices: list[WeekSlice] = []
    begin = start
    while begin <= end:
        if granularity is Granularity.DAY:
            last = begin
        else:
            following = (begin.replace(day=1) + timedelta(days=32)).replace(day=1)
            last = following - timedelta(days=1)
        slices.append(WeekSlice(len(slices), begin, min(last, end)))
        begin = min(last, end) + timedelta(days=1)
    return slices


def week_window(week_start: date, week_end: date, time_zone: str) -> tuple[datetime, datetime]:
    """The week's AMC window: [start 00:00, end + 1 day 00:00) in the collection's zone."""
    zone = ZoneInfo(time_zone)
    return (
        datetime.combine(week_start, time(0), tzinfo=zone),
        datetime.combine(week_end + timedelta(days=1), time(0), tzinfo=zone),
    )


@dataclass(frozen=True)
class Problem:
    """An invalid input: which field, and what is wrong with it."""

    field: str
    message: str


def parse_week_start_day(value: str) -> WeekStartDay | None:
    try:
        return WeekStartDay(value.strip().upper())
    except ValueError:
        return None


def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def latest_allowed_end(today: date, data_lag_days: int) -> date:
    """AMC's data for a day is complete only after the lag: later end dates are refused."""
    return today - timedelta(days=data_lag_days)


def validate_collection(
    *,
    start_date: date,
    end_date: date,
    week_start_day: str,
    time_zone: str,
    today: date,
    max_range_days: int,
    data_lag_days: int,
) -> list[Problem]:
    problems: list[Problem] = []
    if parse_week_start_day(week_start_day) is None:
        problems.append(
            Problem(
                "week_start_day",
                f"unknown week start day {week_start_day!r}: use MONDAY or SUNDAY",
            )
        )
    if not is_time_zone(time_zone):
        problems.append(
            Problem("time_zone", f"unknown time zone {time_zone!r}: use an IANA name like UTC")
        )
    if end_date < start_date:
        problems.append(
            Problem("end_date", f"end_date {end_date} is before start_date {start_date}")
        )
    else:
        days = (end_date - start_date).days + 1
        if days > max_range_days:
            problems.append(
                Problem(
                    "end_date",
                    f"the range covers {days} days; the maximum is {max_range_days} days",
                )
            )
    latest = latest_allowed_end(today, data_lag_days)
    if end_date > latest:
        problems.append(
            Problem(
                "end_date",
                f"end_date {end_date} is too recent: AMC data lags {data_lag_days} day(s), "
                f"so the latest end date allowed today is {latest}",
            )
        )
    return problems


# --- attempts ------------------------------------------------------------------------------


def parse_week_id(origin_id: str) -> UUID | None:
    """The week of a collection origin id, or None when it is not a week id."""
    try:
        return UUID(origin_id)
    except ValueError:
        return None


Outcome = Literal["succeeded", "transient", "permanent"]


def classify(status: str, error: ExecutionError | None) -> Outcome:
    """SUCCEEDED, a failure worth retrying (error.retryable, or TIMED_OUT), or a final one."""
    if status == "SUCCEEDED":
        return "succeeded"
    if status == "TIMED_OUT":
        return "transient"
    if error is not None and error.retryable:
        return "transient"
    return "permanent"


def should_retry(outcome: Outcome, attempt: int, attempt_limit: int, *, cancelled: bool) -> bool:
    return outcome == "transient" and attempt < attempt_limit and not cancelled


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Wait after failed attempt `attempt` (1-based): base, 2 x base, 4 x base ... capped."""
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


# --- progress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    counts: dict[str, int]
    total: int
    done: int
    in_flight: int
    percent_done: float
    estimated_seconds_left: float | None
    # Whole UTC days the weeks not yet submitted take at the daily share; None without one.
    days_at_share: int | None = None
    # The same for people: "156 weeks at 20 a day: 8 days".
    cap_estimate: str = ""


DAY_S = 86400.0


def cap_estimate(to_submit: int, daily_share: int) -> tuple[int | None, str]:
    """How many UTC days the weeks still to submit take at the collection's daily share, and
    the sentence people read. Without a share the collector cannot know: the weeks take what
    the instance's cap leaves after scheduled and external runs, which only the poller sees."""
    if to_submit == 0:
        return 0, "every week submitted"
    if daily_share <= 0:
        return None, (
            f"{to_submit} week(s) to submit, no daily share: as fast as the instance's daily "
            "cap allows after its scheduled and external runs"
        )
    days = math.ceil(to_submit / daily_share)
    return days, f"{to_submit} week(s) at {daily_share} a day: {days} day(s)"


def progress(
    counts: dict[str, int],
    *,
    total: int,
    max_in_flight: int,
    mean_week_seconds: float | None,
    finished: bool,
    daily_share: int = 0,
) -> Progress:
    """Counts per week state, percent of weeks in a final state, and a rough time left.

    The estimate runs the weeks still to do in waves of `max_in_flight`, each taking the mean
    duration of the weeks finished so far; it is None until a week has finished. A daily share
    bounds it from below: weeks that need N days of the share end no sooner than N - 1 days
    from now (the last day's weeks can start at 00:00 UTC).
    """
    full = {state.value: counts.get(state.value, 0) for state in WEEK_STATES}
    done = full["SUCCEEDED"] + full["FAILED"] + full["CANCELLED"]
    in_flight = full["REQUESTED"] + full["RUNNING"]
    remaining = full["PENDING"] + in_flight
    percent = 100.0 if total == 0 else round(100.0 * done / total, 1)
    eta: float | None
    if finished or remaining == 0:
        eta = 0.0
    elif mean_week_seconds is None:
        eta = None
    else:
        eta = round(math.ceil(remaining / max(1, max_in_flight)) * mean_week_seconds, 1)
    # RUNNING weeks have had their execution; REQUESTED ones are still to be submitted.
    to_submit = 0 if finished else full["PENDING"] + full["REQUESTED"]
    days, sentence = cap_estimate(to_submit, daily_share)
    if eta is not None and days is not None and days > 1:
        eta = max(eta, (days - 1) * DAY_S)
    return Progress(full, total, done, in_flight, percent, eta, days, sentence)


def progress_bar(percent: float, width: int = 30) -> str:
    filled = round(width * max(0.0, min(100.0, percent)) / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:5.1f}%"
