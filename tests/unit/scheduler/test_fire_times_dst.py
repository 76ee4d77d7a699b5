"""Fire times in real time zones, on ordinary days and on DST change days.

The policy (cron(8)'s): a schedule whose minute or hour field names more than one value
follows the clock (skipped wall times are not made up; both passes of a repeated hour fire);
a schedule naming one time of day fires once that day (right after a gap; first pass of a
repeat)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scheduler.timing import DailyPreset, ScheduleSpec, next_fire_times


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _fires(cron: str, timezone: str, after: str, count: int) -> list[str]:
    """Fire times as local ISO strings with their offsets, for readable expectations."""
    spec = ScheduleSpec(cron=cron, timezone=timezone)
    fires = next_fire_times(spec, datetime.fromisoformat(after), count)
    assert all(fire.tzinfo is UTC for fire in fires)
    return [fire.astimezone(spec.zone).isoformat(timespec="minutes") for fire in fires]


class TestSpringForwardNewYork:
    """2024-03-10: 02:00 EST -> 03:00 EDT (07:00 UTC); 02:00-02:59 does not exist."""

    def test_a_time_in_the_gap_fires_at_the_first_instant_after_it(self) -> None:
        assert _fires("30 2 * * *", "America/New_York", "2024-03-09T00:00-05:00", 3) == [
            "2024-03-09T02:30-05:00",
            "2024-03-10T03:00-04:00",
            "2024-03-11T02:30-04:00",
        ]

    def test_a_clock_following_schedule_skips_the_gap(self) -> None:
        assert _fires("*/15 2 * * *", "America/New_York", "2024-03-10T00:00-05:00", 2) == [
            "2024-03-11T02:00-04:00",
            "2024-03-11T02:15-04:00",
        ]
        assert _fires("7 * * * *", "America/New_York", "2024-03-10T00:30-05:00", 3) == [
            "2024-03-10T01:07-05:00",
            "2024-03-10T03:07-04:00",
            "2024-03-10T04:07-04:00",
        ]

    def test_a_list_of_hours_follows_the_clock(self) -> None:
        assert _fires("30 1,2 * * *", "America/New_York", "2024-03-10T00:00-05:00", 2) == [
            "2024-03-10T01:30-05:00",
            "2024-03-11T01:30-04:00",
        ]

    def test_times_at_the_gap_end_fire_once(self) -> None:
        assert _fires("*/30 * * * *", "America/New_York", "2024-03-10T01:00-05:00", 4) == [
            "2024-03-10T01:30-05:00",
            "2024-03-10T03:00-04:00",
            "2024-03-10T03:30-04:00",
            "2024-03-10T04:00-04:00",
        ]

    def test_the_gap_fire_is_not_repeated_when_starting_from_it(self) -> None:
        assert _fires("*/15 2,3 * * *", "America/New_York", "2024-03-10T03:00-04:00", 1) == [
            "2024-03-10T03:15-04:00"
        ]

    def test_presets_follow_the_same_rule(self) -> None:
        spec = ScheduleSpec(
            preset=DailyPreset(kind="daily", at="02:30"), timezone="America/New_York"
        )
        assert next_fire_times(spec, _utc("2024-03-10T00:00"), 2) == [
            _utc("2024-03-10T07:00"),
            _utc("2024-03-11T06:30"),
        ]


class TestFallBackNewYork:
    """2024-11-03: 02:00 EDT -> 01:00 EST (06:00 UTC); 01:00-01:59 happens twice."""

    def test_every_hour_fires_both_passes(self) -> None:
        assert _fires("30 * * * *", "America/New_York", "2024-11-03T00:00-04:00", 4) == [
            "2024-11-03T00:30-04:00",
            "2024-11-03T01:30-04:00",
            "2024-11-03T01:30-05:00",
            "2024-11-03T02:30-05:00",
        ]

    def test_a_named_hour_fires_once_at_its_first_occurrence(self) -> None:
        assert _fires("30 1 * * *", "America/New_York", "2024-11-02T12:00-04:00", 2) == [
            "2024-11-03T01:30-04:00",
            "2024-11-04T01:30-05:00",
        ]

    def test_a_range_of_hours_follows_the_clock_through_the_repeat(self) -> None:
        assert _fires("0 1-3 * * *", "America/New_York", "2024-11-03T00:00-04:00", 4) == [
            "2024-11-03T01:00-04:00",
            "2024-11-03T01:00-05:00",
            "2024-11-03T02:00-05:00",
            "2024-11-03T03:00-05:00",
        ]

    def test_every_minute_of_a_range_fires_in_both_passes(self) -> None:
        fires = _fires("* 1-6 * * *", "America/New_York", "2024-11-03T00:59-04:00", 120)
        assert fires[0] == "2024-11-03T01:00-04:00"
        assert fires[59] == "2024-11-03T01:59-04:00"
        assert fires[60] == "2024-11-03T01:00-05:00"
        assert fires[119] == "2024-11-03T01:59-05:00"

    def test_every_hour_from_late_in_the_first_pass_goes_back_to_the_replay(self) -> None:
        assert _fires("10 * * * *", "America/New_York", "2024-11-03T01:45-04:00", 2) == [
            "2024-11-03T01:10-05:00",
            "2024-11-03T02:10-05:00",
        ]
        assert _fires("*/20 * * * *", "America/New_York", "2024-11-03T01:50-04:00", 4) == [
            "2024-11-03T01:00-05:00",
            "2024-11-03T01:20-05:00",
            "2024-11-03T01:40-05:00",
            "2024-11-03T02:00-05:00",
        ]

    def test_a_named_hour_from_late_in_the_first_pass_waits_a_day(self) -> None:
        assert _fires("10 1 * * *", "America/New_York", "2024-11-03T01:45-04:00", 1) == [
            "2024-11-04T01:10-05:00"
        ]

    def test_starting_in_the_second_pass(self) -> None:
        assert _fires("30 * * * *", "America/New_York", "2024-11-03T01:15-05:00", 1) == [
            "2024-11-03T01:30-05:00"
        ]
        assert _fires("30 1 * * *", "America/New_York", "2024-11-03T01:15-05:00", 1) == [
            "2024-11-04T01:30-05:00"
        ]

    def test_presets_fire_once(self) -> None:
        spec = ScheduleSpec(
            preset=DailyPreset(kind="daily", at="01:30"), timezone="America/New_York"
        )
        assert next_fire_times(spec, _utc("2024-11-03T00:00"), 2) == [
            _utc("2024-11-03T05:30"),
            _utc("2024-11-04T06:30"),
        ]


class TestEuropeLondon:
    def test_a_clock_following_schedule_on_spring_forward_day(self) -> None:
        # 2024-03-31: 01:00 GMT -> 02:00 BST; 01:07 never happens and is not made up.
        assert _fires("7 * * * *", "Europe/London", "2024-03-31T00:00Z", 3) == [
            "2024-03-31T00:07+00:00",
            "2024-03-31T02:07+01:00",
            "2024-03-31T03:07+01:00",
        ]

    def test_a_clock_following_schedule_on_fall_back_day(self) -> None:
        # 2024-10-27: 02:00 BST -> 01:00 GMT; both passes of 01:00-01:59 fire.
        assert _fires("*/30 1-2 * * *", "Europe/London", "2024-10-26T23:00Z", 6) == [
            "2024-10-27T01:00+01:00",
            "2024-10-27T01:30+01:00",
            "2024-10-27T01:00+00:00",
            "2024-10-27T01:30+00:00",
            "2024-10-27T02:00+00:00",
            "2024-10-27T02:30+00:00",
        ]
        assert _fires("* 1-6 * * *", "Europe/London", "2024-10-26T23:59Z", 120)[60] == (
            "2024-10-27T01:00+00:00"
        )

    def test_spring_forward(self) -> None:
        # 2024-03-31: 01:00 GMT -> 02:00 BST.
        assert _fires("30 1 * * *", "Europe/London", "2024-03-30T12:00Z", 2) == [
            "2024-03-31T02:00+01:00",
            "2024-04-01T01:30+01:00",
        ]

    def test_fall_back(self) -> None:
        # 2024-10-27: 02:00 BST -> 01:00 GMT.
        assert _fires("0 * * * *", "Europe/London", "2024-10-26T23:30Z", 4) == [
            "2024-10-27T01:00+01:00",
            "2024-10-27T01:00+00:00",
            "2024-10-27T02:00+00:00",
            "2024-10-27T03:00+00:00",
        ]
        assert _fires("30 1 * * *", "Europe/London", "2024-10-26T12:00Z", 2) == [
            "2024-10-27T01:30+01:00",
            "2024-10-28T01:30+00:00",
        ]


class TestLordHoweHalfHourShift:
    def test_spring_forward_by_30_minutes(self) -> None:
        # 2024-10-06: 02:00 +10:30 -> 02:30 +11:00.
        assert _fires("*/10 * * * *", "Australia/Lord_Howe", "2024-10-06T01:35+10:30", 4) == [
            "2024-10-06T01:40+10:30",
            "2024-10-06T01:50+10:30",
            "2024-10-06T02:30+11:00",
            "2024-10-06T02:40+11:00",
        ]
        assert _fires("15 2 * * *", "Australia/Lord_Howe", "2024-10-05T12:00+10:30", 2) == [
            "2024-10-06T02:30+11:00",
            "2024-10-07T02:15+11:00",
        ]

    def test_fall_back_by_30_minutes(self) -> None:
        # 2024-04-07: 02:00 +11:00 -> 01:30 +10:30; 01:30-01:59 happens twice.
        assert _fires("*/15 * * * *", "Australia/Lord_Howe", "2024-04-07T01:20+11:00", 6) == [
            "2024-04-07T01:30+11:00",
            "2024-04-07T01:45+11:00",
            "2024-04-07T01:30+10:30",
            "2024-04-07T01:45+10:30",
            "2024-04-07T02:00+10:30",
            "2024-04-07T02:15+10:30",
        ]
        assert _fires("45 1 * * *", "Australia/Lord_Howe", "2024-04-06T12:00+11:00", 2) == [
            "2024-04-07T01:45+11:00",
            "2024-04-08T01:45+10:30",
        ]


class TestOtherZones:
    @pytest.mark.parametrize(
        ("timezone", "expected"),
        [
            ("UTC", ["2024-03-10T02:30+00:00", "2024-03-11T02:30+00:00"]),
            ("Asia/Kolkata", ["2024-03-10T02:30+05:30", "2024-03-11T02:30+05:30"]),
            ("Asia/Tokyo", ["2024-03-10T02:30+09:00", "2024-03-11T02:30+09:00"]),
        ],
    )
    def test_zones_without_dst(self, timezone: str, expected: list[str]) -> None:
        assert _fires("30 2 * * *", timezone, "2024-03-09T12:00Z", 2) == expected

    def test_southern_hemisphere_springs_forward_in_october(self) -> None:
        # Australia/Sydney 2024-10-06: 02:00 AEST -> 03:00 AEDT.
        assert _fires("30 2 * * SUN", "Australia/Sydney", "2024-09-30T00:00+10:00", 2) == [
            "2024-10-06T03:00+11:00",
            "2024-10-13T02:30+11:00",
        ]

    def test_a_gap_at_midnight(self) -> None:
        # America/Santiago 2024-09-08: 00:00 -04 -> 01:00 -03; midnight does not exist.
        assert _fires("0 0 * * *", "America/Santiago", "2024-09-07T12:00-04:00", 2) == [
            "2024-09-08T01:00-03:00",
            "2024-09-09T00:00-03:00",
        ]

    def test_a_skipped_day(self) -> None:
        # Pacific/Apia skipped 30 December 2011 (UTC-10 -> UTC+14 at midnight).
        assert _fires("0 9 * * *", "Pacific/Apia", "2011-12-29T00:00-10:00", 3) == [
            "2011-12-29T09:00-10:00",
            "2011-12-31T00:00+14:00",
            "2011-12-31T09:00+14:00",
        ]


def test_after_is_exclusive_and_any_aware_zone_works() -> None:
    spec = ScheduleSpec(cron="0 12 * * *", timezone="Europe/Paris")
    after = datetime.fromisoformat("2024-06-01T12:00+02:00")
    assert next_fire_times(spec, after, 1) == [_utc("2024-06-02T10:00")]
    assert next_fire_times(spec, after.astimezone(UTC), 1) == [_utc("2024-06-02T10:00")]
