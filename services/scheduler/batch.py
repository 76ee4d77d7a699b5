"""Turning claimed due schedules into one batch of work: their runs, `schedule.due` events,
next fire times and the schedules that cannot be fired.

Pure: no I/O. The firing loop (firing.py) claims the schedules, calls `plan_batch` and writes
what it returns in the claiming transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from services.scheduler import store
from services.scheduler.logic import FiringConfig, plan_firing, workflow_run
from services.scheduler.runs import due_event, new_ids, spec_of, template_of, window_rule_of
from shared.contract import ScheduleDue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    runs: list[store.NewRun] = field(default_factory=list)
    events: list[ScheduleDue] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # of each event's run
    ids: list[UUID] = field(default_factory=list)
    next_fire_ats: list[datetime | None] = field(default_factory=list)
    last_fire_ats: list[datetime | None] = field(default_factory=list)
    broken: list[tuple[UUID, str]] = field(default_factory=list)


def plan_batch(
    rows: Sequence[store.DueSchedule],
    counts: dict[UUID, tuple[int, int]],
    now: datetime,
    cfg: FiringConfig,
) -> Batch:
    """The runs and events of claimed schedules as of `now`; `counts` holds each schedule's
    (running, buffered) runs. A schedule that cannot be fired is listed in `broken` and
    left out, so one broken schedule does not block the others."""
    batch = Batch()
    ids = new_ids(2 * len(rows) + 64)
    for row in rows:
        schedule_id: UUID = row.id
        try:
            spec = spec_of(row.spec_text)
            running, buffered = counts.get(schedule_id, (0, 0))
            plan = plan_firing(
                spec,
                row.next_fire_at,
                now,
                catch_up=row.catch_up_policy,
                overlap=row.overlap_policy,
                running=running > 0,
                buffered=buffered > 0,
                cfg=cfg,
            )
            rule = window_rule_of(row.window_rule_text)
            template = template_of(row)
            runs: list[store.NewRun] = []
            events: list[ScheduleDue] = []
            kinds: list[str] = []
            for planned in plan.runs:
                run_id = next(ids, None) or uuid4()
                run_json: str | None = None
                event_id: UUID | None = None
                if planned.state != "SKIPPED":
                    work = workflow_run(template, rule, planned.fire_time, spec.timezone)
                    run_json = work.model_dump_json()
                    if planned.state == "EMITTED":
                        event = due_event(
                            schedule_id,
                            run_id,
                            planned.fire_time,
                            work,
                            now,
                            next(ids, None) or uuid4(),
                        )
                        event_id = event.event_id
                        events.append(event)
                        kinds.append(planned.kind)
                runs.append(
                    store.NewRun(
                        id=run_id,
                        schedule_id=schedule_id,
                        fire_time=planned.fire_time,
                        kind=planned.kind,
                        state=planned.state,
                        skip_reason=planned.skip_reason,
                        run_json=run_json,
                        event_id=event_id,
                        created_at=now,
                        emitted_at=now if planned.state == "EMITTED" else None,
                    )
                )
            if plan.unrecorded:
                log.warning(
                    "schedule %s missed more fire times than are recorded one by one",
                    schedule_id,
                )
        except Exception as exc:  # one broken schedule must not block the others
            log.exception("schedule %s cannot be fired; pausing it", schedule_id)
            batch.broken.append((schedule_id, f"cannot be fired: {type(exc).__name__}: {exc}"))
            continue
        batch.runs.extend(runs)
        batch.events.extend(events)
        batch.kinds.extend(kinds)
        batch.ids.append(schedule_id)
        batch.next_fire_ats.append(plan.next_fire_at)
        batch.last_fire_ats.append(plan.runs[-1].fire_time if plan.runs else None)
    return batch
