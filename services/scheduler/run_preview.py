"""What the next runs of a schedule will send: for each of the next fire times, the concrete
time window and parameter values, computed by the same functions the firing loop uses
(`logic.workflow_run`), so a preview equals what is later sent (unless the schedule changes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.scheduler.logic import RunTemplate, next_fire_times, workflow_run
from services.scheduler.timing import ScheduleSpec, WindowRule, window_for
from shared.dates import WeekStart, render_parameters

__all__ = ["preview_runs", "preview_schedule_runs"]


def _times(spec: ScheduleSpec, fire: datetime) -> dict[str, Any]:
    return {"utc": fire.isoformat(), "local": fire.astimezone(spec.zone).isoformat()}


def _wall(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def preview_schedule_runs(
    spec: ScheduleSpec, rule: WindowRule, template: RunTemplate, after: datetime, count: int
) -> list[dict[str, Any]]:
    """A stored schedule's next `count` runs after `after`, as the firing loop builds them."""
    rows = []
    for fire in next_fire_times(spec, after, count):
        run = workflow_run(template, rule, fire, spec.timezone)
        rows.append(
            _times(spec, fire)
            | {
                "time_window_type": run.time_window_type.value,
                "time_window_start": _wall(run.time_window_start),
                "time_window_end": _wall(run.time_window_end),
                "parameters": run.parameters,
            }
        )
    return rows


def preview_runs(
    spec: ScheduleSpec,
    after: datetime,
    count: int,
    *,
    window: WindowRule | None = None,
    parameters: dict[str, Any] | None = None,
    week_start: WeekStart = "MONDAY",
) -> list[dict[str, Any]]:
    """The next `count` fire times after `after`, each with the window and parameter values
    that fire time gives (those given; neither when neither is)."""
    rows = []
    for fire in next_fire_times(spec, after, count):
        row = _times(spec, fire)
        if window is not None:
            bounds = window_for(window, fire, spec.timezone, week_start)
            row |= {
                "time_window_type": bounds.type.value,
                "time_window_start": _wall(bounds.start),
                "time_window_end": _wall(bounds.end),
            }
        if parameters is not None:
            row["parameters"] = render_parameters(parameters, fire, spec.zone, week_start)
        rows.append(row)
    return rows
