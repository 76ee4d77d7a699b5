"""The scheduler's firing rules beyond pure time: which due fire times become which runs.

No I/O. The time rules themselves (cron, presets, DST, catch-up and overlap decisions) live in
`services.scheduler.timing`; this module combines them for one claimed schedule.

Missed fire times: a fire time claimed more than `late_grace` after it passed counts as
missed (the service was down, overloaded, or the schedule paused). When every due fire time
is on time they all fire (normally exactly one). When some were missed:
- with an on-time fire time among them, policy `all` runs the missed ones (bounded) and the
  on-time one; `latest` and `none` skip the missed ones: the on-time run is the latest;
- otherwise the catch-up policy decides (`plan_catch_up`).
Overlap (`decide_overlap`) is checked against runs already in flight before this claim: fire
times caught up together are not held back by each other. When the decision is `skip` every
planned run is skipped; for `buffer` the most recent is buffered and the others skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from services.scheduler.timing import (
    CatchUpPolicy,
    OverlapPolicy,
    ScheduleSpec,
    WindowRule,
    decide_overlap,
    failure_streak,
    load_zone,
    plan_catch_up,
    window_for,
)
from services.scheduler.timing import next_fire_times as _next_fire_times
from shared.contract import RunOptions, WorkflowRun
from shared.dates import WeekStart, render_parameters
from shared.run_target import TARGET_FIELDS

RunKind = Literal["SCHEDULED", "MANUAL", "CATCH_UP", "BACKFILL"]
RunState = Literal[
    "BUFFERED",
    "EMITTED",
    "SUBMITTED",
    "RETRYING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMED_OUT",
    "SKIPPED",
]
ScheduleState = Literal["ACTIVE", "PAUSED"]

TERMINAL_RUN_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
# Outcomes that count towards auto-pause. A cancellation is a person's decision, not a
# failure of the schedule, so it neither counts nor resets the count.
FAILED_OUTCOMES: frozenset[str] = frozenset({"FAILED", "TIMED_OUT"})

SUPERSEDED = "missed: superseded by a later fire time"
OVERLAP_SKIP = "previous run still in flight (overlap policy skip)"
BUFFER_FULL = "previous run still in flight and a run is already buffered (overlap buffer_one)"


# Schedules due together mostly share their spec (thousands of "0 9 * * *" in a few zones):
# the pure fire-time computation is memoised, which keeps a burst of due schedules cheap.
@lru_cache(maxsize=16384)
def _cached_fire_times(spec: ScheduleSpec, after: datetime, count: int) -> tuple[datetime, ...]:
    return tuple(_next_fire_times(spec, after, count))


def next_fire_times(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    try:
        return list(_cached_fire_times(spec, after, count))
    except TypeError:  # a spec holding a list (weekly preset weekdays) is not hashable
        return _next_fire_times(spec, after, count)


@lru_cache(maxsize=16384)
def _cached_window(
    rule: WindowRule, fire_time: datetime, timezone: str, week_start: WeekStart
) -> Any:
    return window_for(rule, fire_time, timezone, week_start)


def _window(rule: WindowRule, fire_time: datetime, timezone: str, week_start: WeekStart) -> Any:
    try:
        return _cached_window(rule, fire_time, timezone, week_start)
    except TypeError:
        return window_for(rule, fire_time, timezone, week_start)


@dataclass(frozen=True)
class FiringConfig:
    late_grace: timedelta
    catch_up_window: timedelta
    max_catch_up_runs: int
    max_enumerated: int


@dataclass(frozen=True)
class PlannedRun:
    fire_time: datetime
    kind: RunKind
    state: Literal["EMITTED", "BUFFERED", "SKIPPED"]
    skip_reason: str | None = None


@dataclass(frozen=True)
class FirePlan:
    runs: tuple[PlannedRun, ...]
    next_fire_at: datetime | None
    # Missed fire times between the recorded head and the recent tail of a very long outage:
    # neither run nor recorded one by one.
    unrecorded: bool = False


def due_fire_times(
    spec: ScheduleSpec, first_due: datetime, now: datetime, cfg: FiringConfig
) -> tuple[list[datetime], datetime | None, bool]:
    """Fire times in [first_due, now], the first fire time after now, and whether some in
    between were left out (more than `max_enumerated` missed: the oldest ones and those
    within the catch-up window are kept, which is all any policy can fire).

    The usual case (one due fire time) computes just one more fire time; the enumeration
    grows geometrically only after an outage."""
    found = [first_due]
    chunk = 1
    ended = False
    while found[-1] <= now and len(found) <= cfg.max_enumerated:
        more = next_fire_times(spec, found[-1], chunk)
        found += more
        if len(more) < chunk:  # the schedule ends (end date)
            ended = True
            break
        chunk = min(chunk * 8, cfg.max_enumerated)
    due = [t for t in found if t <= now]
    later = [t for t in found if t > now]
    if later or ended:
        return due, later[0] if later else None, False
    head = due[: cfg.max_enumerated]
    tail_start = max(head[-1], now - cfg.catch_up_window)
    tail = next_fire_times(spec, tail_start, cfg.max_enumerated + 1)
    recent = [t for t in tail if t <= now]
    upcoming = [t for t in tail if t > now]
    if not upcoming and len(tail) > cfg.max_enumerated:
        # More fire times inside the catch-up window than we enumerate: keep the newest.
        recent = recent[-cfg.max_enumerated :]
        upcoming = next_fire_times(spec, now, 1)
    return head + recent, upcoming[0] if upcoming else None, True


def plan_firing(
    spec: ScheduleSpec,
    first_due: datetime,
    now: datetime,
    *,
    catch_up: CatchUpPolicy,
    overlap: OverlapPolicy,
    running: bool,
    buffered: bool,
    cfg: FiringConfig,
) -> FirePlan:
    due, next_fire_at, unrecorded = due_fire_times(spec, first_due, now, cfg)
    missed = [t for t in due if now - t > cfg.late_grace]
    on_time = [t for t in due if now - t <= cfg.late_grace]
    runs: list[PlannedRun] = []
    if missed:
        if on_time and catch_up != "all":
            runs += [PlannedRun(t, "CATCH_UP", "SKIPPED", SUPERSEDED) for t in missed]
        else:
            plan = plan_catch_up(
                catch_up,
                missed,
                now,
                window=cfg.catch_up_window,
                max_runs=cfg.max_catch_up_runs,
            )
            fire = set(plan.fire)
            reasons = dict(plan.skipped)
            runs += [
                PlannedRun(t, "CATCH_UP", "EMITTED")
                if t in fire
                else PlannedRun(t, "CATCH_UP", "SKIPPED", reasons.get(t, "missed"))
                for t in missed
            ]
    runs += [PlannedRun(t, "SCHEDULED", "EMITTED") for t in on_time]
    return FirePlan(
        tuple(apply_overlap(runs, overlap, running, buffered)), next_fire_at, unrecorded
    )


def apply_overlap(
    runs: list[PlannedRun], overlap: OverlapPolicy, running: bool, buffered: bool
) -> list[PlannedRun]:
    to_fire = [r for r in runs if r.state == "EMITTED"]
    if not to_fire:
        return runs
    decision = decide_overlap(overlap, int(running), int(buffered))
    if decision == "fire":
        return runs
    held = to_fire[-1] if decision == "buffer" else None
    reason = BUFFER_FULL if overlap == "buffer_one" else OVERLAP_SKIP
    out: list[PlannedRun] = []
    for r in runs:
        if r.state != "EMITTED":
            out.append(r)
        elif r is held:
            out.append(PlannedRun(r.fire_time, r.kind, "BUFFERED"))
        else:
            out.append(PlannedRun(r.fire_time, r.kind, "SKIPPED", reason))
    return out


def failure_count_after(outcome: str, current: int) -> int:
    """Consecutive failures after a run ends: failures add one, a success resets."""
    if outcome in FAILED_OUTCOMES or outcome == "SUCCEEDED":
        return failure_streak(current, succeeded=outcome == "SUCCEEDED")
    return current


def auto_pause_reason(failures: int) -> str:
    return f"auto-paused after {failures} consecutive failed runs"


@dataclass(frozen=True)
class RunTemplate:
    """The workflow-run fields of a schedule: everything but the time window. A saved
    workflow or inline SQL; account ids both or neither (the contract's WorkflowRun checks).
    Its run fields are run_target's TARGET_FIELDS, passed to the WorkflowRun by name."""

    user_id: str
    instance_id: str
    advertiser_id: str | None
    marketplace_id: str | None
    workflow_id: str | None
    output_format: Literal["CSV"]
    parameters: dict[str, Any]
    week_start: WeekStart = "MONDAY"
    sql_query: str | None = None
    options: RunOptions = field(default_factory=RunOptions)


def workflow_run(
    template: RunTemplate, rule: WindowRule, fire_time: datetime, timezone: str
) -> WorkflowRun:
    """The run for one fire time, as sent: the AMC time window its rule gives and the
    parameters with their date expressions evaluated, both at `fire_time` in the zone."""
    window = _window(rule, fire_time, timezone, template.week_start)
    return WorkflowRun(
        **{name: getattr(template, name) for name in TARGET_FIELDS},
        parameters=render_parameters(
            template.parameters, fire_time, load_zone(timezone), template.week_start
        ),
        time_window_type=window.type,
        time_window_start=window.start,
        time_window_end=window.end,
        time_window_time_zone=timezone,
    )
