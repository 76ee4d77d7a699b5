"""What the management API does, one transaction per operation."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from pydantic import ValidationError

from services.scheduler import store
from services.scheduler.firing import Firer
from services.scheduler.logic import workflow_run
from services.scheduler.runs import (
    Clock,
    due_event,
    run_span_attributes,
    send_again,
    template_of,
    window_rule_of,
)
from services.scheduler.schemas import SPEC_FIELDS, ScheduleCreate, ScheduleUpdate
from services.scheduler.settings import SchedulerSettings
from services.scheduler.timing import ScheduleSpec, next_fire_time
from shared.contract import SchedulePaused
from shared.outbox import Connection, Outbox


class NotFoundError(Exception):
    pass


class ConflictError(Exception):
    pass


def invalid(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the body field."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}]
    )


def values_of(body: ScheduleCreate) -> store.ScheduleValues:
    """The columns a create (or a whole update) writes: the body's fields by name, and these
    in the form the table keeps them."""
    kept: dict[str, Any] = {
        "parameters": dict(body.parameters),
        "spec": body.spec().model_dump(mode="json", exclude_none=True),
        "window_rule": body.window.model_dump(mode="json"),
        "retry_policy": body.retry.model_dump(mode="json") if body.retry else None,
        "run_options": body.options.model_dump(mode="json", exclude_none=True),
    }
    names = (f.name for f in fields(store.ScheduleValues) if f.name not in kept)
    return store.ScheduleValues(**{name: getattr(body, name) for name in names}, **kept)


def body_of(row: store.Schedule) -> dict[str, Any]:
    """A stored schedule as a create body (the base an update applies to)."""
    spec: dict[str, Any] = row.spec
    return {
        "name": row.name,
        "user_id": row.user_id,
        "instance_id": row.instance_id,
        "advertiser_id": row.advertiser_id,
        "marketplace_id": row.marketplace_id,
        "workflow_id": row.workflow_id,
        "sql_query": row.sql_query,
        "output_format": row.output_format,
        "parameters": row.parameters,
        "options": row.run_options,
        **{name: spec.get(name) for name in SPEC_FIELDS},
        "window": row.window_rule,
        "catch_up_policy": row.catch_up_policy,
        "overlap_policy": row.overlap_policy,
        "week_start": row.week_start,
        "retry": row.retry_policy,
    }


def first_fire(spec: ScheduleSpec, now: datetime) -> datetime:
    fire = next_fire_time(spec, now)
    if fire is None:
        raise invalid(
            "end_date", "the schedule would never fire: its end date is already past", None
        )
    return fire


def check_first_run(body: ScheduleCreate, values: store.ScheduleValues, fire: datetime) -> None:
    """Refuse a schedule whose first run could not be built (an EXPRESSION window whose end
    is not after its start), rather than pause it at its first fire time."""
    template = template_of(values)
    try:
        workflow_run(template, body.window, fire, body.timezone)
    except ValueError as exc:
        raise invalid("window", f"at the first fire time {fire.isoformat()}: {exc}") from None


class Operations:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        outbox: Outbox,
        firer: Firer,
        settings: SchedulerSettings,
        now: Clock,
        tracer: Tracer | None = None,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._firer = firer
        self._settings = settings
        self._now = now
        self._tracer = tracer or trace.get_tracer("amc.scheduler")

    async def _found(
        self, conn: Connection, schedule_id: UUID, *, lock: bool = False
    ) -> store.Schedule:
        row = await store.get_schedule(conn, schedule_id, lock=lock)
        if row is None:
            raise NotFoundError(f"schedule {schedule_id} not found")
        return row

    async def create(self, body: ScheduleCreate) -> store.Schedule:
        now = self._now()
        next_fire_at = first_fire(body.spec(), now)
        values = values_of(body)
        check_first_run(body, values, next_fire_at)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await store.insert_schedule(conn, uuid4(), values, next_fire_at, now)
            await self._firer.notify(conn)
        self._firer.wake()
        return row

    async def get(self, schedule_id: UUID) -> store.Schedule:
        async with self._pool.acquire() as conn:
            return await self._found(conn, schedule_id)

    async def list_schedules(
        self,
        *,
        user_id: str | None,
        instance_id: str | None,
        state: str | None,
        paging: store.Paging,
    ) -> tuple[list[store.Schedule], int]:
        async with self._pool.acquire() as conn:
            return await store.list_schedules(
                conn, user_id=user_id, instance_id=instance_id, state=state, paging=paging
            )

    async def update(self, schedule_id: UUID, patch: ScheduleUpdate) -> store.Schedule:
        changes = patch.model_dump(exclude_unset=True)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._found(conn, schedule_id, lock=True)
            merged = body_of(row)
            if "cron" in changes and "preset" not in changes:
                merged["preset"] = None
            if "preset" in changes and "cron" not in changes:
                merged["cron"] = None
            # Likewise for what runs: naming one of workflow and SQL drops the other.
            if changes.get("workflow_id") is not None and "sql_query" not in changes:
                merged["sql_query"] = None
            if changes.get("sql_query") is not None and "workflow_id" not in changes:
                merged["workflow_id"] = None
            if "options" in changes and changes["options"] is None:
                changes["options"] = {}  # null clears them: AMC's defaults apply again
            merged.update(changes)
            try:
                body = ScheduleCreate.model_validate(merged)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                ) from None
            values = values_of(body)
            now = self._now()
            next_fire_at = row.next_fire_at
            if values.spec != row.spec:
                next_fire_at = first_fire(body.spec(), now)
            if next_fire_at is not None:
                check_first_run(body, values, next_fire_at)
            updated = await store.update_schedule(conn, schedule_id, values, next_fire_at, now)
            await self._firer.notify(conn)
        self._firer.wake()
        return updated

    async def delete(self, schedule_id: UUID) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await store.delete_schedule(conn, schedule_id):
                raise NotFoundError(f"schedule {schedule_id} not found")

    async def pause(self, schedule_id: UUID, note: str | None) -> store.Schedule:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._found(conn, schedule_id, lock=True)
            if row.state == "PAUSED":
                return row
            now = self._now()
            reason = f"paused by an operator: {note}" if note else "paused by an operator"
            row = await store.pause(conn, schedule_id, reason, now)
            await store.skip_buffered(conn, schedule_id, "schedule paused")
            await self._outbox.enqueue(
                conn,
                SchedulePaused(
                    schedule_id=schedule_id,
                    reason=reason,
                    consecutive_failures=row.consecutive_failures,
                    occurred_at=now,
                ),
            )
            return row

    async def resume(self, schedule_id: UUID) -> store.Schedule:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._found(conn, schedule_id, lock=True)
            if row.state == "ACTIVE":
                return row
            now = self._now()
            # From now: fire times missed while paused are not caught up (no burst).
            spec = ScheduleSpec.model_validate(row.spec)
            row = await store.resume(conn, schedule_id, next_fire_time(spec, now), now)
            await self._firer.notify(conn)
        self._firer.wake()
        return row

    async def trigger(self, schedule_id: UUID, *, force: bool) -> store.Run:
        """A manual run now. Overlap policy and pause do not apply: a person asked for it.

        Its trace is the API call's: a "schedule trigger" span (with the run's ids) under the
        call's SERVER span, and the run's schedule.due is published under it.
        """
        with self._tracer.start_as_current_span(
            "schedule trigger",
            attributes={"amc.schedule_id": str(schedule_id), "amc.run_kind": "MANUAL"},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._trigger(span, schedule_id, force=force)
            except (NotFoundError, ConflictError):
                raise  # the caller's mistake, answered 404/409: not a failure of the span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise

    async def _trigger(self, span: Span, schedule_id: UUID, *, force: bool) -> store.Run:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._found(conn, schedule_id, lock=True)
            now = self._now()
            cooldown = timedelta(seconds=self._settings.manual_cooldown_s)
            last = await store.last_manual_at(conn, schedule_id)
            if last is not None and not force and now - last < cooldown:
                wait = int((cooldown - (now - last)).total_seconds()) + 1
                raise ConflictError(
                    f"a manual run was triggered at {last.isoformat()}, less than "
                    f"{int(cooldown.total_seconds() // 60)} minutes ago: wait {wait} s "
                    "or pass force=true"
                )
            spec = ScheduleSpec.model_validate(row.spec)
            run_id = uuid4()
            work = workflow_run(
                template_of(row), window_rule_of(_json(row.window_rule)), now, spec.timezone
            )
            event = due_event(schedule_id, run_id, now, work, now)
            span.set_attributes(run_span_attributes(event, "MANUAL"))
            inserted = await store.insert_runs(
                conn,
                [
                    store.NewRun(
                        id=run_id,
                        schedule_id=schedule_id,
                        fire_time=now,
                        kind="MANUAL",
                        state="EMITTED",
                        skip_reason=None,
                        run_json=work.model_dump_json(),
                        event_id=event.event_id,
                        created_at=now,
                        emitted_at=now,
                    )
                ],
            )
            if not inserted:
                raise ConflictError("a run for this very instant exists already; try again")
            await self._outbox.enqueue(conn, event)
            run = await store.get_run(conn, run_id)
        assert run is not None
        return run

    async def rerun(
        self, schedule_id: UUID, since: datetime, run_ids: list[UUID] | None
    ) -> list[store.Run]:
        """Send failed runs (FAILED, TIMED_OUT) with a fire time at or after `since` again, each
        as its next attempt with the run it was first sent with. Paused or not: a person asked.
        A run that succeeded, or is in flight, is never picked, so a fire time never gets a
        second success."""
        with self._tracer.start_as_current_span(
            "schedule rerun", attributes={"amc.schedule_id": str(schedule_id)}
        ):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._found(conn, schedule_id, lock=True)
                now = self._now()
                rows = await store.lock_rerunnable(conn, schedule_id, since, run_ids)
                events = [await send_again(conn, row, now) for row in rows]
                await self._outbox.enqueue(conn, *events)
                return [await _run(conn, row.id) for row in rows]

    async def runs(
        self,
        schedule_id: UUID,
        *,
        state: str | None,
        kind: str | None,
        paging: store.Paging,
    ) -> tuple[list[store.Run], int]:
        async with self._pool.acquire() as conn:
            await self._found(conn, schedule_id)
            return await store.list_runs(conn, schedule_id, state=state, kind=kind, paging=paging)

    async def stats(self, schedule_id: UUID) -> tuple[store.Schedule, store.RunStats]:
        async with self._pool.acquire() as conn:
            row = await self._found(conn, schedule_id)
            return row, await store.run_stats(conn, schedule_id)


async def _run(conn: Connection, run_id: UUID) -> store.Run:
    run = await store.get_run(conn, run_id)
    assert run is not None  # read in the transaction that locked or wrote it
    return run


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
