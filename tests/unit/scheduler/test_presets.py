"""Presets: every N days, daily, weekly, monthly (day numbers, last and business days)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import TypeAdapter

from services.scheduler.timing import (
    MonthlyPreset,
    Preset,
    ScheduleSpec,
    next_fire_times,
)

_PRESET: TypeAdapter[Preset] = TypeAdapter(Preset)


def _local(spec: ScheduleSpec, after: str, count: int) -> list[str]:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    fires = next_fire_times(spec, start, count)
    return [fire.astimezone(spec.zone).strftime("%Y-%m-%d %H:%M %a") for fire in fires]


def _spec(preset: dict[str, object], timezone: str = "UTC", **dates: date) -> ScheduleSpec:
    return ScheduleSpec(preset=_PRESET.validate_python(preset), timezone=timezone, **dates)


def test_every_n_days_is_anchored_to_the_start_date_across_month_ends() -> None:
    spec = _spec({"kind": "every_n_days", "days": 3, "at": "06:00"}, start_date=date(2024, 1, 28))
    assert _local(spec, "2024-01-01T00:00", 5) == [
        "2024-01-28 06:00 Sun",
        "2024-01-31 06:00 Wed",
        "2024-02-03 06:00 Sat",
        "2024-02-06 06:00 Tue",
        "2024-02-09 06:00 Fri",
    ]
    # From the middle of the sequence, still on the same beat: Feb 27 + 3 days is Mar 1.
    assert _local(spec, "2024-02-27T12:00", 3) == [
        "2024-03-01 06:00 Fri",
        "2024-03-04 06:00 Mon",
        "2024-03-07 06:00 Thu",
    ]


def test_every_n_days_on_the_anchor_day_after_its_time() -> None:
    spec = _spec({"kind": "every_n_days", "days": 10, "at": "06:00"}, start_date=date(2024, 12, 27))
    assert _local(spec, "2024-12-27T07:00", 2) == ["2025-01-06 06:00 Mon", "2025-01-16 06:00 Thu"]


def test_every_1_day_is_daily() -> None:
    spec = _spec({"kind": "every_n_days", "days": 1, "at": "23:59"}, start_date=date(2024, 2, 28))
    assert _local(spec, "2024-01-01T00:00", 3) == [
        "2024-02-28 23:59 Wed",
        "2024-02-29 23:59 Thu",
        "2024-03-01 23:59 Fri",
    ]


def test_daily_in_local_time() -> None:
    spec = _spec({"kind": "daily", "at": "09:15"}, timezone="Europe/London")
    assert _local(spec, "2024-03-30T09:00", 3) == [
        "2024-03-30 09:15 Sat",
        "2024-03-31 09:15 Sun",
        "2024-04-01 09:15 Mon",
    ]
    # 09:15 BST is 08:15 UTC.
    assert next_fire_times(spec, datetime(2024, 4, 1, tzinfo=UTC), 1) == [
        datetime(2024, 4, 1, 8, 15, tzinfo=UTC)
    ]


def test_weekly_on_chosen_days() -> None:
    spec = _spec({"kind": "weekly", "weekdays": ["FRI", "MON", "MON"], "at": "07:00"})
    assert _local(spec, "2024-02-26T07:00", 4) == [
        "2024-03-01 07:00 Fri",
        "2024-03-04 07:00 Mon",
        "2024-03-08 07:00 Fri",
        "2024-03-11 07:00 Mon",
    ]


def test_monthly_on_a_day_clips_to_short_months() -> None:
    spec = _spec({"kind": "monthly", "day": 31, "at": "12:00"})
    assert _local(spec, "2024-01-01T00:00", 5) == [
        "2024-01-31 12:00 Wed",
        "2024-02-29 12:00 Thu",
        "2024-03-31 12:00 Sun",
        "2024-04-30 12:00 Tue",
        "2024-05-31 12:00 Fri",
    ]
    assert _local(_spec({"kind": "monthly", "day": 30, "at": "12:00"}), "2023-02-01T00:00", 2) == [
        "2023-02-28 12:00 Tue",
        "2023-03-30 12:00 Thu",
    ]


def test_monthly_on_a_day_later_this_month() -> None:
    spec = _spec({"kind": "monthly", "day": 15, "at": "12:00"})
    assert _local(spec, "2024-12-15T12:00", 2) == ["2025-01-15 12:00 Wed", "2025-02-15 12:00 Sat"]


def test_monthly_last_day() -> None:
    spec = _spec({"kind": "monthly", "day": "last", "at": "00:00"})
    assert _local(spec, "2023-12-31T00:00", 3) == [
        "2024-01-31 00:00 Wed",
        "2024-02-29 00:00 Thu",
        "2024-03-31 00:00 Sun",
    ]


def test_monthly_first_business_day() -> None:
    # 2024: June 1 is a Saturday, September 1 a Sunday.
    spec = _spec({"kind": "monthly", "day": "first_business_day", "at": "08:00"})
    assert _local(spec, "2024-05-01T09:00", 5) == [
        "2024-06-03 08:00 Mon",
        "2024-07-01 08:00 Mon",
        "2024-08-01 08:00 Thu",
        "2024-09-02 08:00 Mon",
        "2024-10-01 08:00 Tue",
    ]


def test_monthly_last_business_day() -> None:
    # 2024: March 31 is a Sunday, August 31 a Saturday; 2025-05-31 a Saturday.
    spec = _spec({"kind": "monthly", "day": "last_business_day", "at": "17:00"})
    assert _local(spec, "2024-03-01T00:00", 2) == ["2024-03-29 17:00 Fri", "2024-04-30 17:00 Tue"]
    assert _local(spec, "2024-08-01T00:00", 1) == ["2024-08-30 17:00 Fri"]
    assert _local(spec, "2025-05-01T00:00", 1) == ["2025-05-30 17:00 Fri"]


def test_minute_of_day() -> None:
    assert MonthlyPreset(kind="monthly", day=1, at="00:00").minute_of_day == 0
    assert MonthlyPreset(kind="monthly", day="last", at="23:59").minute_of_day == 23 * 60 + 59
