"""Building a run: its template (what to run), window rule, options, ids, the `schedule.due`
event that carries it, and the root span of its trace.

The firing loop, the API (previews), the operations (manual triggers, re-runs) and the
outcome handlers (retries) all build runs; this module is the one place they do it, so a
fired run, a triggered one and a retried one are the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid4

from opentelemetry import context as otel_context
from opentelemetry.trace import Link, Span, Tracer
from pydantic import TypeAdapter

from services.scheduler import store
from services.scheduler.logic import RunTemplate
from services.scheduler.store import DueSchedule, Run, Schedule, ScheduleValues
from services.scheduler.timing import ScheduleSpec, WindowRule
from shared.contract import Origin, OriginKind, RunOptions, ScheduleDue, WorkflowRun
from shared.outbox import Connection

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


_WINDOW_RULE: TypeAdapter[WindowRule] = TypeAdapter(WindowRule)


# Thousands of schedules share a handful of specs: parse each distinct one once. The parsed
# spec also caches its zone and compiled rule.
@lru_cache(maxsize=8192)
def spec_of(text: str) -> ScheduleSpec:
    return ScheduleSpec.model_validate_json(text)


@lru_cache(maxsize=8192)
def window_rule_of(text: str) -> WindowRule:
    return _WINDOW_RULE.validate_json(text)


def template_of(row: Schedule | DueSchedule | ScheduleValues) -> RunTemplate:
    """What a schedule runs: from its row, or from the values a create or update would store
    (checked before they are)."""
    return RunTemplate(
        user_id=row.user_id,
        instance_id=row.instance_id,
        advertiser_id=row.advertiser_id,
        marketplace_id=row.marketplace_id,
        workflow_id=row.workflow_id,
        output_format=row.output_format,
        parameters=row.parameters,
        week_start=row.week_start,
        sql_query=row.sql_query,
        options=options_of(row.run_options),
    )


_NO_OPTIONS = RunOptions()


def options_of(stored: dict[str, Any]) -> RunOptions:
    # Most schedules set no option: skip validating an empty object per fire time.
    return RunOptions.model_validate(stored) if stored else _NO_OPTIONS


def new_ids(count: int) -> Iterator[UUID]:
    """Random (version 4) UUIDs from one read of the OS's randomness rather than one each."""
    pool = os.urandom(16 * count)
    for i in range(count):
        yield UUID(bytes=pool[16 * i : 16 * i + 16], version=4)


FIRE_SPAN = "schedule fire"


def run_span_attributes(event: ScheduleDue, kind: str) -> dict[str, str]:
    """The ids a run's spans carry (searchable: amc.schedule_id, amc.run_id, ...)."""
    return {
        "amc.schedule_id": str(event.schedule_id),
        "amc.run_id": str(event.run_id),
        "amc.fire_time": event.fire_time.isoformat(),
        "amc.run_kind": kind,
        "amc.user_id": event.run.user_id,
        "amc.instance_id": event.run.instance_id,
    }


def start_fire_span(
    tracer: Tracer,
    event: ScheduleDue,
    kind: str,
    *,
    start_time: int | None = None,
    links: Sequence[Link] = (),
) -> Span:
    """The root span of a run's trace (not made current: a batch holds many of them)."""
    return tracer.start_span(
        FIRE_SPAN,
        context=otel_context.Context(),
        start_time=start_time,
        attributes=run_span_attributes(event, kind),
        links=links,
    )


def due_event(
    schedule_id: UUID,
    run_id: UUID,
    fire_time: datetime,
    run: WorkflowRun,
    now: datetime,
    event_id: UUID | None = None,
    attempt: int = 1,
) -> ScheduleDue:
    return ScheduleDue(
        event_id=event_id or uuid4(),
        schedule_id=schedule_id,
        run_id=run_id,
        fire_time=fire_time,
        attempt=attempt,
        origin=Origin(kind=OriginKind.SCHEDULE, id=str(run_id)),
        run=run,
        occurred_at=now,
    )


async def send_again(conn: Connection, row: Run, now: datetime) -> ScheduleDue:
    """The run's next attempt: the run as first sent (same run id, fire time, window and
    parameters), its row EMITTED again; the event is the caller's to enqueue."""
    run = WorkflowRun.model_validate(row.run)
    event = due_event(row.schedule_id, row.id, row.fire_time, run, now, attempt=row.attempt + 1)
    await store.start_attempt(conn, row.id, event.attempt, event.event_id, now)
    return event
