"""ScheduleSpec validation: every error names the field it is about."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from services.scheduler.timing import CronExpression, EveryNDaysPreset, ScheduleSpec

_DAILY = {"kind": "daily", "at": "06:00"}


def _error(**fields: Any) -> tuple[tuple[str | int, ...], str]:
    """The location and message of the single validation error."""
    with pytest.raises(ValidationError) as raised:
        ScheduleSpec.model_validate(fields)
    errors = raised.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


@pytest.mark.parametrize(
    ("fields", "location", "message"),
    [
        ({"cron": "61 * * * *"}, ("cron",), "minute field: 61 is out of range 0-59"),
        ({"cron": "0 0 * * * *"}, ("cron",), "seconds and years are not supported"),
        ({"cron": "0 0 1 1 * 2024 x"}, ("cron",), "seconds and years are not supported"),
        ({"cron": "* * * * 2#9"}, ("cron",), "the occurrence after # must be 1-5"),
        ({"timezone": "Mars/Olympus"}, ("timezone",), "unknown time zone 'Mars/Olympus'"),
        ({"timezone": "America"}, ("timezone",), "unknown time zone"),
        ({"timezone": "../etc/passwd"}, ("timezone",), "unknown time zone"),
        ({"timezone": "localtime"}, ("timezone",), "unknown time zone"),
        ({"timezone": ""}, ("timezone",), "unknown time zone"),
        (
            {"start_date": "2024-05-02", "end_date": "2024-05-01"},
            ("end_date",),
            "end_date 2024-05-01 is before start_date 2024-05-02",
        ),
        (
            {"cron": None, "preset": {"kind": "hourly", "at": "06:00"}},
            ("preset",),
            "does not match any of the expected tags",
        ),
        (
            {"cron": None, "preset": {"kind": "daily", "at": "24:00"}},
            ("preset", "daily", "at"),
            "expected a 24-hour time HH:MM (00:00-23:59), got '24:00'",
        ),
        (
            {"cron": None, "preset": {"kind": "daily", "at": "6:00"}},
            ("preset", "daily", "at"),
            "expected a 24-hour time HH:MM",
        ),
        (
            {"cron": None, "preset": {"kind": "every_n_days", "days": 0, "at": "06:00"}},
            ("preset", "every_n_days", "days"),
            "greater than or equal to 1",
        ),
        (
            {"cron": None, "preset": {"kind": "every_n_days", "days": 2, "at": "06:00"}},
            ("start_date",),
            "required by the every_n_days preset",
        ),
        (
            {"cron": None, "preset": {"kind": "weekly", "weekdays": [], "at": "06:00"}},
            ("preset", "weekly", "weekdays"),
            "at least 1 item",
        ),
        (
            {"cron": None, "preset": {"kind": "weekly", "weekdays": ["FUNDAY"], "at": "06:00"}},
            ("preset", "weekly", "weekdays", 0),
            "Input should be 'MON'",
        ),
        (
            {"cron": "0 0 * * *", "preset": _DAILY},
            (),
            "give exactly one of cron or preset",
        ),
        ({"cron": None}, (), "give exactly one of cron or preset"),
        ({"frequency": "often"}, ("frequency",), "Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_field(
    fields: dict[str, Any], location: tuple[str | int, ...], message: str
) -> None:
    loc, msg = _error(**{"timezone": "UTC", "cron": "0 0 * * *"} | fields)
    assert loc == location
    assert message in msg


@pytest.mark.parametrize("day", [0, 32, "first_day", 1.5])
def test_monthly_day_out_of_range_names_the_field(day: object) -> None:
    with pytest.raises(ValidationError) as raised:
        ScheduleSpec.model_validate(
            {"timezone": "UTC", "preset": {"kind": "monthly", "day": day, "at": "06:00"}}
        )
    assert {error["loc"][:3] for error in raised.value.errors()} == {("preset", "monthly", "day")}


def test_timezone_is_required() -> None:
    with pytest.raises(ValidationError) as raised:
        ScheduleSpec.model_validate({"cron": "0 0 * * *"})
    assert raised.value.errors()[0]["loc"] == ("timezone",)


def test_a_valid_spec_round_trips_through_json() -> None:
    spec = ScheduleSpec(
        timezone="Europe/London",
        preset=EveryNDaysPreset(kind="every_n_days", days=3, at="06:30"),
        start_date=date(2024, 1, 1),
        end_date=date(2024, 1, 1),
    )
    assert ScheduleSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.zone.key == "Europe/London"


def test_cron_spec_exposes_its_parsed_rule() -> None:
    spec = ScheduleSpec(timezone="UTC", cron="0 9 * * MON-FRI")
    assert isinstance(spec.rule, CronExpression)
    assert spec.rule.minutes_of_day == (540,)
