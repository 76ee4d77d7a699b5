"""Previews for people and for the CLI's --json output."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.scheduler.timing import ScheduleSpec, preview, preview_json

_AFTER = datetime(2024, 11, 3, 4, 0, tzinfo=UTC)


def test_preview_pairs_utc_and_local() -> None:
    spec = ScheduleSpec(cron="30 * * * *", timezone="America/New_York")
    pairs = preview(spec, _AFTER, 3)
    assert [utc for utc, _ in pairs] == [
        datetime(2024, 11, 3, 4, 30, tzinfo=UTC),
        datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
        datetime(2024, 11, 3, 6, 30, tzinfo=UTC),
    ]
    # Compared in UTC: PEP 495 makes a repeated local time (fold=1) unequal across zones.
    assert all(local.astimezone(UTC) == utc for utc, local in pairs)
    assert [local.tzname() for _, local in pairs] == ["EDT", "EDT", "EST"]


def test_preview_json_from_a_cron_string() -> None:
    rows = preview_json("30 * * * *", "America/New_York", _AFTER, 3)
    assert rows == [
        {"utc": "2024-11-03T04:30:00+00:00", "local": "2024-11-03T00:30:00-04:00"},
        {"utc": "2024-11-03T05:30:00+00:00", "local": "2024-11-03T01:30:00-04:00"},
        {"utc": "2024-11-03T06:30:00+00:00", "local": "2024-11-03T01:30:00-05:00"},
    ]
    assert json.loads(json.dumps(rows)) == rows


def test_preview_json_from_a_spec() -> None:
    spec = ScheduleSpec(cron="0 0 * * *", timezone="Asia/Kolkata")
    assert preview_json(spec, None, _AFTER, 1) == [
        {"utc": "2024-11-03T18:30:00+00:00", "local": "2024-11-04T00:00:00+05:30"}
    ]
    assert preview_json(spec, "Asia/Kolkata", _AFTER, 1) == preview_json(spec, None, _AFTER, 1)


def test_preview_json_errors() -> None:
    spec = ScheduleSpec(cron="0 0 * * *", timezone="Asia/Kolkata")
    with pytest.raises(ValueError, match="differs from the spec's 'Asia/Kolkata'"):
        preview_json(spec, "UTC", _AFTER, 1)
    with pytest.raises(ValueError, match="timezone is required"):
        preview_json("0 0 * * *", None, _AFTER, 1)
    with pytest.raises(ValidationError, match="minute field: 99 is out of range 0-59"):
        preview_json("99 0 * * *", "UTC", _AFTER, 1)
    with pytest.raises(ValidationError, match="unknown time zone"):
        preview_json("0 0 * * *", "Nowhere/Land", _AFTER, 1)
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        preview_json("0 0 * * *", "UTC", datetime(2024, 1, 1), 1)
