"""Start and end dates, and the arguments of the fire-time functions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import islice, pairwise

import pytest

from services.scheduler.timing import (
    ScheduleSpec,
    iter_fire_times,
    next_fire_time,
    next_fire_times,
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_start_date_is_the_first_local_day() -> None:
    spec = ScheduleSpec(cron="0 0 * * *", timezone="America/New_York", start_date=date(2024, 5, 10))
    # Midnight of the start date itself fires.
    assert next_fire_times(spec, _utc("2024-01-01T00:00"), 2) == [
        _utc("2024-05-10T04:00"),
        _utc("2024-05-11T04:00"),
    ]
    # Later `after` instants are unaffected.
    assert next_fire_time(spec, _utc("2024-06-01T12:00")) == _utc("2024-06-02T04:00")


def test_end_date_is_inclusive_in_the_schedule_zone() -> None:
    spec = ScheduleSpec(cron="30 23 * * *", timezone="Asia/Tokyo", end_date=date(2024, 5, 10))
    # 23:30 in Tokyo on 10 May is 14:30 UTC that day: the last fire.
    assert next_fire_times(spec, _utc("2024-05-08T00:00"), 5) == [
        _utc("2024-05-08T14:30"),
        _utc("2024-05-09T14:30"),
        _utc("2024-05-10T14:30"),
    ]
    assert next_fire_time(spec, _utc("2024-05-10T14:30")) is None
    assert list(iter_fire_times(spec, _utc("2024-06-01T00:00"))) == []


def test_start_and_end_on_the_same_day() -> None:
    spec = ScheduleSpec(
        cron="0 */8 * * *",
        timezone="UTC",
        start_date=date(2024, 2, 29),
        end_date=date(2024, 2, 29),
    )
    assert list(iter_fire_times(spec, _utc("2024-01-01T00:00"))) == [
        _utc("2024-02-29T00:00"),
        _utc("2024-02-29T08:00"),
        _utc("2024-02-29T16:00"),
    ]


def test_a_start_date_whose_midnight_does_not_exist() -> None:
    # America/Santiago 2024-09-08 starts at 01:00 -03 (04:00 UTC): 00:00 is in the gap.
    spec = ScheduleSpec(cron="0 * * * *", timezone="America/Santiago", start_date=date(2024, 9, 8))
    assert next_fire_times(spec, _utc("2024-09-01T00:00"), 2) == [
        _utc("2024-09-08T04:00"),
        _utc("2024-09-08T05:00"),
    ]


def test_the_last_fire_time_of_the_calendar() -> None:
    spec = ScheduleSpec(cron="59 23 31 12 *", timezone="UTC", end_date=date.max)
    assert next_fire_time(spec, _utc("9999-12-31T00:00")) == _utc("9999-12-31T23:59")
    assert next_fire_time(spec, _utc("9999-12-31T23:59")) is None


def test_counts() -> None:
    spec = ScheduleSpec(cron="* * * * *", timezone="UTC")
    assert next_fire_times(spec, _utc("2024-01-01T00:00"), 0) == []
    assert len(next_fire_times(spec, _utc("2024-01-01T00:00"), 1000)) == 1000
    with pytest.raises(ValueError, match="count must not be negative"):
        next_fire_times(spec, _utc("2024-01-01T00:00"), -1)


def test_after_must_be_aware() -> None:
    spec = ScheduleSpec(cron="* * * * *", timezone="UTC")
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        next_fire_time(spec, datetime(2024, 1, 1))


def test_fire_times_are_strictly_increasing_and_later_than_after() -> None:
    spec = ScheduleSpec(cron="*/7 * * * *", timezone="Europe/Berlin")
    after = datetime.fromisoformat("2024-10-27T00:53:17.5+02:00")
    fires = list(islice(iter_fire_times(spec, after), 500))
    assert fires[0] > after
    assert all(later > earlier for earlier, later in pairwise(fires))
