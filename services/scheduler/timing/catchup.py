"""Catch-up: what to do with fire times missed while the scheduler was down or paused.

- ``latest`` (default): one run for the most recent missed fire time, if it is no older than
  the catch-up window (default 1 hour) at `now`; every other missed time is skipped.
- ``all``: one run per missed fire time, oldest first, at most `max_runs` (default 10, AMC's
  limit of running executions per instance); the newer rest is skipped.
- ``none``: every missed fire time is skipped.

Skipped fire times come with a reason, for the schedule's run history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.scheduler.timing.fire_times import require_aware

__all__ = ["CatchUpPlan", "CatchUpPolicy", "plan_catch_up"]

CatchUpPolicy = Literal["latest", "all", "none"]


@dataclass(frozen=True)
class CatchUpPlan:
    """Missed fire times to run now (oldest first), and those skipped, each with a reason."""

    fire: list[datetime] = field(default_factory=list)
    skipped: list[tuple[datetime, str]] = field(default_factory=list)


def plan_catch_up(
    policy: CatchUpPolicy,
    missed: list[datetime],
    now: datetime,
    *,
    window: timedelta = timedelta(hours=1),
    max_runs: int = 10,
) -> CatchUpPlan:
    """Split missed fire times (aware, none later than `now`; duplicates count once) into runs
    to fire and skips, by `policy`."""
    if max_runs < 1:
        raise ValueError(f"max_runs must be at least 1, got {max_runs}")
    now = require_aware(now, "now")
    times = sorted({require_aware(moment, "missed") for moment in missed})
    if times and times[-1] > now:
        raise ValueError(f"missed fire time {times[-1].isoformat()} is after now {now.isoformat()}")
    if policy == "none":
        return CatchUpPlan(skipped=[(moment, "catch-up policy is none") for moment in times])
    if policy == "all":
        return CatchUpPlan(
            fire=times[:max_runs],
            skipped=[
                (moment, f"over the catch-up limit of {max_runs} runs (policy all)")
                for moment in times[max_runs:]
            ],
        )
    if not times:
        return CatchUpPlan()
    *older, latest = times
    skipped = [(moment, "a later fire time was missed too (policy latest)") for moment in older]
    if now - latest > window:
        skipped.append((latest, f"older than the catch-up window of {window} (policy latest)"))
        return CatchUpPlan(skipped=skipped)
    return CatchUpPlan(fire=[latest], skipped=skipped)
