"""Event subscribers: run outcomes from the poller. Thin, one transaction each.

Only events whose origin is a schedule run concern the scheduler; the others (collection weeks,
external requests) return before touching the database beyond the consumer's de-duplication
record.

Attempts: a run may be sent again (a retry or an operator's re-run) under the same origin as a
higher attempt. execution.* events echo only the origin, so every execution id is recorded
with the attempt it belongs to (`schedule_run_executions`); an event of an execution recorded
under another attempt, or already finished, is a late one and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

from opentelemetry import trace
from opentelemetry.trace import Link, Tracer

from services.scheduler import store
from services.scheduler.firing import notify_channel
from services.scheduler.logic import TERMINAL_RUN_STATES as TERMINAL
from services.scheduler.logic import auto_pause_reason, failure_count_after
from services.scheduler.retries import RetryPolicy, retry_delay
from services.scheduler.runs import Clock, due_event, start_fire_span
from services.scheduler.settings import SchedulerSettings
from services.scheduler.timing import should_pause
from shared.consumer import Tx
from shared.contract import (
    ExecutionCompleted,
    ExecutionSubmitted,
    Origin,
    OriginKind,
    SchedulePaused,
    WorkflowRun,
)
from shared.outbox import Connection
from shared.runtime import ServiceRuntime
from shared.telemetry import end_together, trace_carrier

log = logging.getLogger(__name__)


def run_id_of(origin: Origin) -> UUID | None:
    """The schedule run an event belongs to, or None when it is not one of ours."""
    if origin.kind is not OriginKind.SCHEDULE:
        return None
    try:
        return UUID(origin.id)
    except ValueError:
        log.warning("ignoring an event whose schedule origin id %r is not a run id", origin.id)
        return None


class Outcomes:
    """What a run's outcome does to its schedule: failure streak, auto-pause, buffered run."""

    def __init__(
        self, settings: SchedulerSettings, now: Clock, tracer: Tracer | None = None
    ) -> None:
        self._settings = settings
        self._now = now
        self._tracer = tracer or trace.get_tracer("amc.scheduler")

    async def submitted(self, tx: Tx, event: ExecutionSubmitted) -> None:
        run_id = run_id_of(event.origin)
        if run_id is None:
            return
        conn = tx.conn
        if await store.known_execution(conn, event.execution_id) is not None:
            return  # recorded already, or finished (its completion overtook it)
        run = await store.lock_run(conn, run_id)
        if run is None:
            return
        if run.state in ("EMITTED", "SUBMITTED"):
            await store.record_execution(conn, event.execution_id, run_id, run.attempt, "SUBMITTED")
        await store.mark_submitted(
            conn, run_id, event.execution_id, event.amc_execution_id, self._now()
        )

    async def completed(self, tx: Tx, event: ExecutionCompleted) -> None:
        run_id = run_id_of(event.origin)
        if run_id is None:
            return
        conn = tx.conn
        schedule_id: UUID | None = await conn.fetchval(
            "SELECT schedule_id FROM schedule_runs WHERE id = $1", run_id
        )
        if schedule_id is None:
            return  # the schedule was deleted, or the run is another deployment's
        # Lock order everywhere: schedule, then its runs.
        schedule = await store.get_schedule(conn, schedule_id, lock=True)
        if schedule is None:
            return
        run = await store.lock_run(conn, run_id)
        if run is None:
            return
        known = await store.known_execution(conn, event.execution_id)
        if known is not None and (known.attempt != run.attempt or known.status in TERMINAL):
            log.info(
                "completion %s of run %s ignored (attempt %s, now at attempt %s)",
                event.execution_id,
                run_id,
                known.attempt,
                run.attempt,
            )
            return
        if run.state not in ("EMITTED", "SUBMITTED"):
            return  # already recorded (a second completion for the same run)
        await store.record_execution(conn, event.execution_id, run_id, run.attempt, event.status)
        now = self._now()
        outcome = store.Outcome(
            state=event.status,
            execution_id=event.execution_id,
            amc_execution_id=event.amc_execution_id,
            error_code=event.error.code if event.error else None,
            error_message=event.error.message if event.error else None,
            result_uri=event.result.uri if event.result else None,
            row_count=event.result.row_count if event.result else None,
        )
        policy = schedule.retry_policy
        wait = retry_delay(
            RetryPolicy.model_validate(policy) if policy else None,
            run.attempt,
            event.status,
            event.error,
        )
        if wait is not None:
            # Not an outcome yet: neither counted towards auto-pause nor releasing a buffered
            # run (a RETRYING run is in flight for the overlap policy).
            await store.mark_retrying(conn, run_id, outcome, now + wait, now)
            # Every replica's firing loop learns the new retry time at commit.
            await conn.execute(
                "SELECT pg_notify($1, '')", notify_channel(self._settings.schema_name)
            )
            return
        if await store.mark_completed(conn, run_id, outcome, now) is None:
            return  # already recorded (a second completion for the same run)
        failures = failure_count_after(event.status, schedule.consecutive_failures)
        if failures != schedule.consecutive_failures:
            await store.set_failures(conn, schedule_id, failures)
        if schedule.state != "ACTIVE":
            return
        if should_pause(failures, self._settings.failure_threshold):
            reason = auto_pause_reason(failures)
            await store.pause(conn, schedule_id, reason, now)
            await store.skip_buffered(conn, schedule_id, "schedule paused")
            await tx.emit(
                SchedulePaused(
                    schedule_id=schedule_id,
                    reason=reason,
                    consecutive_failures=failures,
                    occurred_at=now,
                )
            )
            log.info("schedule %s %s", schedule_id, reason)
            return
        await release_buffered(conn, tx, schedule_id, now, self._settings, self._tracer)


async def release_buffered(
    conn: Connection,
    tx: Tx,
    schedule_id: UUID,
    now: datetime,
    settings: SchedulerSettings,
    tracer: Tracer,
) -> bool:
    """Emit the buffered run of a schedule once nothing else of it is in flight.

    The released run is a trace of its own (root "schedule fire", linked to the outcome that
    released it), not a continuation of the previous run's trace.
    """
    stale_before = now - timedelta(seconds=settings.run_stale_after_s)
    if await store.has_running(conn, schedule_id, stale_before):
        return False
    buffered = await store.oldest_buffered(conn, schedule_id)
    if buffered is None:
        return False
    run = WorkflowRun.model_validate(buffered.run)
    event = due_event(schedule_id, buffered.id, buffered.fire_time, run, now)
    released_by = trace.get_current_span().get_span_context()
    span = start_fire_span(
        tracer, event, buffered.kind, links=[Link(released_by)] if released_by.is_valid else []
    )
    try:
        await store.emit_buffered(conn, buffered.id, event.event_id, now)
        await tx.outbox.enqueue(conn, event, trace_contexts=[trace_carrier(span)])
    except BaseException as exc:
        end_together([span], exc)
        raise
    end_together([span])
    return True


def register(runtime: ServiceRuntime, outcomes: Outcomes) -> None:
    runtime.consumer.add(ExecutionSubmitted, outcomes.submitted)
    runtime.consumer.add(ExecutionCompleted, outcomes.completed)
