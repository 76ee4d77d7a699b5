"""Previews of a schedule's next fire times, for people: each in UTC and in local time."""

from __future__ import annotations

from datetime import datetime

from services.scheduler.timing.fire_times import next_fire_times
from services.scheduler.timing.spec import ScheduleSpec

__all__ = ["preview", "preview_json"]


def preview(spec: ScheduleSpec, after: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """The next `count` fire times after `after` as (UTC, local with its offset) pairs."""
    return [(fire, fire.astimezone(spec.zone)) for fire in next_fire_times(spec, after, count)]


def preview_json(
    cron_or_spec: str | ScheduleSpec, timezone: str | None, after: datetime, count: int
) -> list[dict[str, str]]:
    """The preview as JSON-ready rows ``{"utc": "...+00:00", "local": "...-04:00"}`` (ISO 8601).

    A cron string needs `timezone`; a spec carries its own, so `timezone` must then be None or
    the same. Invalid input raises pydantic's ValidationError (naming the field) or ValueError.
    """
    if isinstance(cron_or_spec, str):
        if timezone is None:
            raise ValueError("timezone is required with a cron expression")
        spec = ScheduleSpec(cron=cron_or_spec, timezone=timezone)
    else:
        spec = cron_or_spec
        if timezone is not None and timezone != spec.timezone:
            raise ValueError(f"timezone {timezone!r} differs from the spec's {spec.timezone!r}")
    return [
        {"utc": utc.isoformat(), "local": local.isoformat()}
        for utc, local in preview(spec, after, count)
    ]
