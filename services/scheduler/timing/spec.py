"""The "when" of a schedule: a cron expression or a preset, a time zone, and optional dates."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from typing import Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from services.scheduler.timing.cron import parse_cron
from services.scheduler.timing.presets import EveryNDaysPreset, Preset
from services.scheduler.timing.wallclock import WallClockRule
from services.scheduler.timing.zones import load_zone

__all__ = ["ScheduleSpec"]


class ScheduleSpec(BaseModel):
    """When a schedule fires: exactly one of ``cron`` or ``preset``, read in ``timezone``.

    Fire times are UTC instants. On DST change days (the rule of Debian's cron(8) for
    wildcard jobs, extended to every field naming more than one value):

    - A schedule whose minute or hour field names more than one value (``*``, ``*/n``, a
      range or a list) follows the clock: a local time the clock skips (spring-forward gap)
      is not made up, and a local time the clock shows twice (fall-back) fires in both
      passes. ``7 * * * *`` in Europe/London on 31 Mar 2024 fires at 00:07 GMT and 02:07
      BST (01:07 never happens); ``30 * * * *`` in America/New_York on 3 Nov 2024 fires at
      01:30 EDT and at 01:30 EST.
    - A schedule naming one time of day (a single minute and a single hour; every preset)
      keeps its one run: a time in a gap fires once, at the first instant after the gap; a
      repeated time fires once, at its first occurrence. ``30 2 * * *`` in America/New_York
      fires at 03:00 EDT on 10 Mar 2024; ``30 1 * * *`` on 3 Nov 2024 only at 01:30 EDT.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(
        description="IANA time zone the schedule's local times are read in, e.g. Europe/London.",
        examples=["America/New_York"],
    )
    cron: str | None = Field(
        default=None,
        description="Five-field cron expression: minute hour day-of-month month day-of-week."
        " Lists, ranges, steps, month and weekday names; L (last day) in day-of-month;"
        " d#n (n-th weekday d, e.g. 2#2 = second Tuesday) and dL (last weekday d, e.g. 5L ="
        " last Friday) in day-of-week. When both day fields are restricted (neither starts"
        " with *), a day matching EITHER fires (standard cron). Seconds and year fields are"
        " not supported.",
        examples=["30 6 * * MON-FRI"],
    )
    preset: Preset | None = Field(
        default=None, description="A common schedule without cron syntax, chosen by `kind`."
    )
    start_date: date | None = Field(
        default=None,
        validate_default=True,
        description="First local day the schedule may fire (inclusive), in `timezone`. The"
        " every_n_days preset counts its days from it and requires it.",
    )
    end_date: date | None = Field(
        default=None,
        description="Last local day the schedule may fire (inclusive), in `timezone`: nothing"
        " fires from the following local midnight on.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        load_zone(name)
        return name

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, text: str | None) -> str | None:
        if text is not None:
            parse_cron(text)
        return text

    @field_validator("start_date")
    @classmethod
    def _start_for_every_n_days(cls, start: date | None, info: ValidationInfo) -> date | None:
        if start is None and isinstance(info.data.get("preset"), EveryNDaysPreset):
            raise ValueError("required by the every_n_days preset, which counts days from it")
        return start

    @field_validator("end_date")
    @classmethod
    def _end_not_before_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if end is not None and start is not None and end < start:
            raise ValueError(f"end_date {end} is before start_date {start}")
        return end

    @model_validator(mode="after")
    def _cron_or_preset(self) -> Self:
        if (self.cron is None) == (self.preset is None):
            raise ValueError("give exactly one of cron or preset")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        """The time zone, loaded."""
        return load_zone(self.timezone)

    @cached_property
    def rule(self) -> WallClockRule:
        """The local days and times of day the schedule names."""
        if self.preset is not None:
            return self.preset.rule(self.start_date)
        assert self.cron is not None  # guaranteed by _cron_or_preset
        return parse_cron(self.cron)
