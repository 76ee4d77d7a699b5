"""Pure collection rules: week splitting, windows, validation, attempts and progress."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.collector.logic import (
    Granularity,
    WeekStartDay,
    backoff_s,
    cap_estimate,
    classify,
    parse_week_id,
    parse_week_start_day,
    progress,
    progress_bar,
    should_retry,
    split_range,
    split_weeks,
    validate_collection,
    week_window,
)
from shared.contract import ExecutionError


def test_range_aligned_to_mondays_gives_whole_weeks() -> None:
    weeks = split_weeks(date(2024, 1, 1), date(2024, 1, 28), WeekStartDay.MONDAY)
    assert [(w.start, w.end) for w in weeks] == [
        (date(2024, 1, 1), date(2024, 1, 7)),
        (date(2024, 1, 8), date(2024, 1, 14)),
        (date(2024, 1, 15), date(2024, 1, 21)),
        (date(2024, 1, 22), date(2024, 1, 28)),
    ]
    assert [w.seq for w in weeks] == [0, 1, 2, 3]


def test_partial_first_and_last_weeks_are_clipped_to_the_range() -> None:
    # 2024-01-03 is a Wednesday, 2024-01-16 a Tuesday.
    weeks = split_weeks(date(2024, 1, 3), date(2024, 1, 16), WeekStartDay.MONDAY)
    assert [(w.start, w.end) for w in weeks] == [
        (date(2024, 1, 3), date(2024, 1, 7)),
        (date(2024, 1, 8), date(2024, 1, 14)),
        (date(2024, 1, 15), date(2024, 1, 16)),
    ]


def test_sunday_weeks_start_on_sundays() -> None:
    weeks = split_weeks(date(2024, 1, 1), date(2024, 1, 14), WeekStartDay.SUNDAY)
    assert [(w.start, w.end) for w in weeks] == [
        (date(2024, 1, 1), date(2024, 1, 6)),
        (date(2024, 1, 7), date(2024, 1, 13)),
        (date(2024, 1, 14), date(2024, 1, 14)),
    ]
    assert all(w.start.weekday() == 6 for w in weeks[1:])


def test_a_single_day_is_one_week() -> None:
    weeks = split_weeks(date(2024, 2, 29), date(2024, 2, 29), WeekStartDay.MONDAY)
    assert [(w.start, w.end) for w in weeks] == [(date(2024, 2, 29), date(2024, 2, 29))]


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="end before start"):
        split_weeks(date(2024, 1, 2), date(2024, 1, 1), WeekStartDay.MONDAY)


@given(
    start=st.dates(min_value=date(2015, 1, 1), max_value=date(2030, 1, 1)),
    length=st.integers(min_value=0, max_value=800),
    day=st.sampled_from(list(WeekStartDay)),
)
def test_weeks_tile_the_range_exactly(start: date, length: int, day: WeekStartDay) -> None:
    end = start + timedelta(days=length)
    weeks = split_weeks(start, end, day)
    assert weeks[0].start == start
    assert weeks[-1].end == end
    for before, after in itertools.pairwise(weeks):
        assert after.start == before.end + timedelta(days=1)
        assert after.start.weekday() == day.weekday
    assert all(1 <= w.days <= 7 for w in weeks)
    assert sum(w.days for w in weeks) == length + 1


def test_week_window_is_midnight_to_midnight_in_the_zone() -> None:
    start, end = week_window(date(2024, 3, 4), date(2024, 3, 10), "America/New_York")
    assert start.isoformat() == "2024-03-04T00:00:00-05:00"
    # DST starts on 2024-03-10: the window still ends at local midnight.
    assert end.isoformat() == "2024-03-11T00:00:00-04:00"
    utc_start, utc_end = week_window(date(2024, 1, 1), date(2024, 1, 7), "UTC")
    assert (utc_start.isoformat(), utc_end.isoformat()) == (
        "2024-01-01T00:00:00+00:00",
        "2024-01-08T00:00:00+00:00",
    )


def _problems(**overrides: object) -> dict[str, str]:
    values: dict[str, object] = {
        "start_date": date(2024, 1, 1),
        "end_date": date(2024, 6, 30),
        "week_start_day": "MONDAY",
        "time_zone": "UTC",
        "today": date(2025, 1, 10),
        "max_range_days": 1096,
        "data_lag_days": 2,
    }
    values.update(overrides)
    return {p.field: p.message for p in validate_collection(**values)}  # type: ignore[arg-type]


def test_a_valid_collection_has_no_problems() -> None:
    assert _problems() == {}
    assert _problems(week_start_day="sunday") == {}


def test_invalid_inputs_name_their_field() -> None:
    assert "before start_date" in _problems(end_date=date(2023, 12, 31))["end_date"]
    assert "maximum is 1096 days" in _problems(start_date=date(2021, 1, 1))["end_date"]
    assert "use MONDAY or SUNDAY" in _problems(week_start_day="FUNDAY")["week_start_day"]
    assert "unknown time zone" in _problems(time_zone="Mars/Base")["time_zone"]


def test_dates_inside_the_data_lag_are_refused() -> None:
    assert _problems(end_date=date(2025, 1, 8)) == {}
    message = _problems(end_date=date(2025, 1, 9))["end_date"]
    assert "too recent" in message
    assert "2025-01-08" in message
    assert _problems(end_date=date(2025, 1, 9), data_lag_days=0) == {}
    assert "too recent" in _problems(end_date=date(2025, 1, 11), data_lag_days=0)["end_date"]
    assert _problems(end_date=date(2025, 1, 10), data_lag_days=0) == {}


def test_week_start_day_parsing() -> None:
    assert parse_week_start_day(" monday ") is WeekStartDay.MONDAY
    assert parse_week_start_day("SUNDAY") is WeekStartDay.SUNDAY
    assert parse_week_start_day("FRIDAY") is None


def test_week_ids_from_origins() -> None:
    week = uuid.uuid4()
    assert parse_week_id(str(week)) == week
    assert parse_week_id("not-a-week") is None
    assert parse_week_id(f"{week}:1") is None


def _error(retryable: bool, code: str = "AMC_UNAVAILABLE") -> ExecutionError:
    return ExecutionError(code=code, message="m", retryable=retryable)


def test_retryable_errors_and_timeouts_are_transient() -> None:
    assert classify("SUCCEEDED", None) == "succeeded"
    assert classify("FAILED", _error(True)) == "transient"
    assert classify("TIMED_OUT", _error(False, "TIMED_OUT")) == "transient"
    assert classify("FAILED", _error(False, "AMC_VALIDATION")) == "permanent"
    assert classify("FAILED", _error(False, "REAUTH_REQUIRED")) == "permanent"
    assert classify("CANCELLED", _error(False, "CANCELLED")) == "permanent"


def test_retry_only_within_the_attempt_limit_and_not_when_cancelled() -> None:
    assert should_retry("transient", 1, 3, cancelled=False)
    assert should_retry("transient", 2, 3, cancelled=False)
    assert not should_retry("transient", 3, 3, cancelled=False)
    assert not should_retry("permanent", 1, 3, cancelled=False)
    assert not should_retry("transient", 1, 3, cancelled=True)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(a, 30, 100) for a in (1, 2, 3, 4)] == [30, 60, 100, 100]
    assert backoff_s(1, 0, 100) == 0


def test_progress_counts_percent_and_estimate() -> None:
    p = progress(
        {"SUCCEEDED": 5, "FAILED": 1, "RUNNING": 2, "PENDING": 12},
        total=20,
        max_in_flight=4,
        mean_week_seconds=10.0,
        finished=False,
    )
    assert p.counts["REQUESTED"] == 0
    assert (p.done, p.in_flight, p.percent_done) == (6, 2, 30.0)
    assert p.estimated_seconds_left == 40.0  # 14 weeks left in waves of 4: 4 waves of 10 s
    unknown = progress(
        {"PENDING": 3}, total=3, max_in_flight=1, mean_week_seconds=None, finished=False
    )
    assert unknown.estimated_seconds_left is None
    done = progress(
        {"SUCCEEDED": 3}, total=3, max_in_flight=1, mean_week_seconds=1.0, finished=True
    )
    assert (done.percent_done, done.estimated_seconds_left) == (100.0, 0.0)


def test_progress_bar() -> None:
    assert progress_bar(50.0, width=10) == "[#####-----]  50.0%"
    assert progress_bar(0, width=4) == "[----]   0.0%"
    assert progress_bar(100, width=4) == "[####] 100.0%"


def test_window_datetimes_are_aware() -> None:
    start, _ = week_window(date(2024, 1, 1), date(2024, 1, 7), "Europe/Berlin")
    assert isinstance(start, datetime)
    assert start.utcoffset() == timedelta(hours=1)


class TestGranularity:
    def test_months_of_a_year_are_12_slices(self) -> None:
        slices = split_range(
            date(2023, 1, 1), date(2023, 12, 31), Granularity.MONTH, WeekStartDay.MONDAY
        )
        assert len(slices) == 12
        assert [(s.start, s.end) for s in slices[:2]] == [
            (date(2023, 1, 1), date(2023, 1, 31)),
            (date(2023, 2, 1), date(2023, 2, 28)),
        ]
        assert slices[-1].end == date(2023, 12, 31)
        assert [s.seq for s in slices] == list(range(12))

    def test_partial_months_are_clipped(self) -> None:
        slices = split_range(
            date(2024, 1, 20), date(2024, 3, 5), Granularity.MONTH, WeekStartDay.MONDAY
        )
        assert [(s.start, s.end) for s in slices] == [
            (date(2024, 1, 20), date(2024, 1, 31)),
            (date(2024, 2, 1), date(2024, 2, 29)),
            (date(2024, 3, 1), date(2024, 3, 5)),
        ]

    def test_days_and_weeks(self) -> None:
        days = split_range(
            date(2024, 2, 27), date(2024, 3, 2), Granularity.DAY, WeekStartDay.MONDAY
        )
        assert [(s.start, s.end) for s in days] == [
            (date(2024, 2, d), date(2024, 2, d)) for d in (27, 28, 29)
        ] + [(date(2024, 3, d), date(2024, 3, d)) for d in (1, 2)]
        weeks = split_range(
            date(2024, 1, 3), date(2024, 1, 20), Granularity.WEEK, WeekStartDay.SUNDAY
        )
        assert weeks == split_weeks(date(2024, 1, 3), date(2024, 1, 20), WeekStartDay.SUNDAY)


def test_the_estimate_counts_the_daily_share() -> None:
    # Issue 20's example: 156 weeks at 20 a day take 8 days.
    assert cap_estimate(156, 20) == (8, "156 week(s) at 20 a day: 8 day(s)")
    days, sentence = cap_estimate(156, 0)
    assert days is None
    assert "no daily share" in sentence
    p = progress(
        {"SUCCEEDED": 16, "RUNNING": 10, "REQUESTED": 10, "PENDING": 120},
        total=156,
        max_in_flight=10,
        mean_week_seconds=600.0,
        finished=False,
        daily_share=20,
    )
    # RUNNING weeks have their execution: 130 to submit at 20 a day is 7 days, so no sooner
    # than 6 days from now, although 14 waves of 10 minutes would take under 3 hours.
    assert (p.days_at_share, p.cap_estimate) == (7, "130 week(s) at 20 a day: 7 day(s)")
    assert p.estimated_seconds_left == 6 * 86400
    unshared = progress(
        {"PENDING": 30}, total=30, max_in_flight=10, mean_week_seconds=60.0, finished=False
    )
    assert (unshared.days_at_share, unshared.estimated_seconds_left) == (None, 180.0)
    assert cap_estimate(0, 20) == (0, "every week submitted")
