"""Dispatching weeks and moving collections through their states, inside the caller's
transaction. Callers lock the collection row first (store.lock_collection); every week change
happens under that lock, so the in-flight count read here cannot be raced by another replica.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, Tracer
from prometheus_client import CollectorRegistry

from services.collector import store
from services.collector.logic import (
    CollectionStatus,
    WeekStatus,
    backoff_s,
    classify,
    should_retry,
    week_window,
)
from services.collector.settings import CollectorSettings
from services.collector.store import CollectionRow, KnownExecution, WeekRow
from shared.contract import (
    CollectionCompleted,
    ExecutionCompleted,
    ExecutionSubmitted,
    Origin,
    OriginKind,
    WeekRequested,
    WorkflowRun,
)
from shared.dates import WeekStart, render_parameters
from shared.metrics import MetricSet
from shared.outbox import Connection, Outbox
from shared.telemetry import end_together, link_to, trace_carrier

log = logging.getLogger(__name__)


def week_start_of(c: CollectionRow) -> WeekStart:
    """The collection's week start day, for the week date expressions."""
    return "SUNDAY" if c.week_start_day == "SUNDAY" else "MONDAY"


OPEN_COLLECTION = (CollectionStatus.QUEUED, CollectionStatus.ACTIVE, CollectionStatus.PAUSED)

DISPATCH_SPAN = "week dispatch"
# amc_collector_week_outcomes' label of each state an outcome leaves its week in.
_OUTCOME_LABELS = {
    WeekStatus.SUCCEEDED: "succeeded",
    WeekStatus.PENDING: "retry",
    WeekStatus.FAILED: "failed",
}
DispatchKind = Literal["first", "retry", "reconcile"]


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.weeks_requested = metric.counter(
            "amc_collector_weeks_requested",
            "week.requested events emitted, by kind (first, retry, reconcile)",
            "kind",
        )
        self.weeks_finished = metric.counter(
            "amc_collector_week_outcomes",
            "Execution outcomes recorded for weeks (succeeded, retry, failed)",
            "outcome",
        )
        self.collections_finished = metric.counter(
            "amc_collector_collections_finished", "Collections that reached a final state", "status"
        )
        self.collections = metric.gauge(
            "amc_collector_collections",
            "Collections by state (refreshed by the maintenance loop)",
            "status",
        )
        self.weeks_in_flight = metric.gauge(
            "amc_collector_weeks_in_flight", "Weeks requested or running, all collections"
        )


@dataclass
class Engine:
    settings: CollectorSettings
    outbox: Outbox
    metrics: CollectorMetrics
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("amc.collector"))

    # --- dispatching ------------------------------------------------------------------------

    def week_requested(self, c: CollectionRow, week: WeekRow) -> WeekRequested:
        start, end = week_window(week.week_start, week.week_end, c.time_zone)
        # Date expressions in the parameters are read as of the end of the slice's window,
        # as a schedule firing right after the slice would have sent them.
        parameters = render_parameters(
            c.run.get("parameters") or {}, end, ZoneInfo(c.time_zone), week_start_of(c)
        )
        run = WorkflowRun(
            **(c.run | {"parameters": parameters}),
            time_window_start=start,
            time_window_end=end,
            time_window_time_zone=c.time_zone,
        )
        return WeekRequested(
            collection_id=c.id,
            week_id=week.id,
            week_start=week.week_start,
            week_end=week.week_end,
            attempt=week.attempt,
            origin=Origin(kind=OriginKind.COLLECTION, id=str(week.id)),
            run=run,
            daily_share=c.daily_share or None,
        )

    async def _request(
        self,
        conn: Connection,
        c: CollectionRow,
        weeks: Sequence[tuple[WeekRow, DispatchKind]],
        started_ns: int,
        causes: Sequence[SpanContext] = (),
    ) -> None:
        """Enqueue week.requested for `weeks`, each published under its own root span
        "week dispatch" (one trace per week request), linked to the collection's creation
        trace and to whatever caused the dispatch (`causes`, else the current span: an API
        call, the outcomes of previous weeks).
        The spans end once the events are in the outbox; the caller commits."""
        links: list[Link] = link_to(c.trace_context)
        for cause in causes or [trace.get_current_span().get_span_context()]:
            if cause.is_valid and all(
                (link.context.trace_id, link.context.span_id) != (cause.trace_id, cause.span_id)
                for link in links
            ):
                links.append(Link(cause))
        events = [self.week_requested(c, w) for w, _ in weeks]
        root = otel_context.Context()
        spans: list[Span] = [
            self.tracer.start_span(
                DISPATCH_SPAN,
                context=root,
                attributes={
                    "amc.collection_id": str(c.id),
                    "amc.week_id": str(w.id),
                    "amc.user_id": event.run.user_id,
                    "amc.instance_id": event.run.instance_id,
                    "amc.attempt": w.attempt,
                    "amc.dispatch_kind": kind,
                },
                links=links,
                start_time=started_ns,
            )
            for (w, kind), event in zip(weeks, events, strict=True)
        ]
        try:
            await self.outbox.enqueue(
                conn, *events, trace_contexts=[trace_carrier(span) for span in spans]
            )
        except BaseException as exc:
            end_together(spans, exc)
            raise
        end_together(spans)
        for _, kind in weeks:
            self.metrics.weeks_requested.labels(kind).inc()

    async def dispatch(
        self, conn: Connection, c: CollectionRow, causes: Sequence[SpanContext] = ()
    ) -> int:
        """Request due pending weeks up to the collection's limit; returns how many."""
        if c.status is not CollectionStatus.ACTIVE:
            return 0
        started_ns = time.time_ns()
        weeks = await store.request_due_weeks(conn, c.id, c.max_in_flight)
        if weeks:
            kinds: list[DispatchKind] = ["first" if w.attempt == 1 else "retry" for w in weeks]
            await self._request(conn, c, list(zip(weeks, kinds, strict=True)), started_ns, causes)
        return len(weeks)

    async def settle(
        self, conn: Connection, c: CollectionRow, causes: Sequence[SpanContext] = ()
    ) -> None:
        """Dispatch what may go, then finish the collection if nothing is left open."""
        if await self.dispatch(conn, c, causes):
            return  # a week just requested is open: nothing to finish
        counts = await store.week_counts(conn, c.id)
        open_weeks = sum(counts.get(s, 0) for s in ("PENDING", "REQUESTED", "RUNNING"))
        if c.status in OPEN_COLLECTION and open_weeks == 0:
            failed = counts.get(WeekStatus.FAILED, 0) > 0
            status = (
                CollectionStatus.COMPLETED_WITH_FAILURES if failed else CollectionStatus.COMPLETED
            )
            await self._finish(conn, c, status, counts)
            if c.status is CollectionStatus.ACTIVE:
                await self.admit(conn)
        elif (
            c.status is CollectionStatus.CANCELLED
            and c.finished_at is None
            and counts.get("REQUESTED", 0) + counts.get("RUNNING", 0) == 0
        ):
            await self._finish(conn, c, CollectionStatus.CANCELLED, counts)

    async def _finish(
        self,
        conn: Connection,
        c: CollectionRow,
        status: CollectionStatus,
        counts: dict[str, int],
    ) -> None:
        await store.set_status(conn, c.id, status, finished=True)
        assert status.value in ("COMPLETED", "COMPLETED_WITH_FAILURES", "CANCELLED")
        await self.outbox.enqueue(
            conn,
            CollectionCompleted(
                collection_id=c.id,
                status=status.value,
                weeks_total=c.weeks_total,
                weeks_succeeded=counts.get("SUCCEEDED", 0),
                weeks_failed=counts.get("FAILED", 0),
            ),
        )
        self.metrics.collections_finished.labels(status.value).inc()
        log.info("collection %s finished: %s %s", c.id, status.value, counts)

    async def admit(self, conn: Connection) -> int:
        """Promote the oldest QUEUED collections while global slots are free."""
        await store.lock_admission(conn)
        free = self.settings.max_active_collections - await store.count_active(conn)
        if free <= 0:
            return 0
        admitted = await store.lock_next_queued(conn, free)
        for c in admitted:
            await store.set_status(conn, c.id, CollectionStatus.ACTIVE, started=True)
            log.info("collection %s admitted", c.id)
            active = await store.get_collection(conn, c.id)
            assert active is not None
            await self.settle(conn, active)
        return len(admitted)

    # --- outcomes from the poller -------------------------------------------------------------

    async def on_submitted(
        self, conn: Connection, week_id: UUID, event: ExecutionSubmitted
    ) -> None:
        await self.on_submitted_many(conn, [(week_id, event)])

    async def on_submitted_many(
        self, conn: Connection, submissions: Sequence[tuple[UUID, ExecutionSubmitted]]
    ) -> None:
        """Record executions that started; a week appears at most once in `submissions`."""
        found = await self._lock(conn, [(w, event.execution_id) for w, event in submissions])
        running: list[store.Submission] = []
        for week_id, event in submissions:
            if week_id not in found:
                continue
            _, week, known = found[week_id]
            if known is not None:
                continue  # already recorded, or finished (completion overtook submission)
            if week.status is not WeekStatus.REQUESTED:
                # Not waiting for an execution: a late event of an earlier attempt.
                log.info(
                    "submission %s of week %s ignored (%s)",
                    event.execution_id,
                    week_id,
                    week.status.value,
                )
                continue
            running.append(
                store.Submission(week_id, week.attempt, event.execution_id, event.amc_execution_id)
            )
        if running:
            await store.mark_running(conn, running)

    async def on_completed(
        self, conn: Connection, week_id: UUID, event: ExecutionCompleted
    ) -> None:
        await self.on_completed_many(conn, [(week_id, event)])

    async def on_completed_many(
        self,
        conn: Connection,
        completions: Sequence[tuple[UUID, ExecutionCompleted]],
        causes: Sequence[SpanContext] = (),
    ) -> None:
        """Record how executions ended, then dispatch once per collection for all of them: a
        wave of completions costs a few statements, not a few per completion. A week appears
        at most once in `completions`; `causes` are their spans, in order (default: the
        current span), which the week requests they lead to link to."""
        found = await self._lock(conn, [(w, event.execution_id) for w, event in completions])
        outcomes: list[store.Outcome] = []
        causes_of: dict[UUID, list[SpanContext]] = {}  # the collections to settle
        for index, (week_id, event) in enumerate(completions):
            if week_id not in found:
                continue
            c, week, known = found[week_id]
            outcome = self._outcome(c, week, known, event)
            if outcome is not None:
                outcomes.append(outcome)
                causes_of.setdefault(c.id, [])
                if index < len(causes):
                    causes_of[c.id].append(causes[index])
        if not outcomes:
            return
        await store.mark_finished(conn, outcomes)
        for outcome in outcomes:
            self.metrics.weeks_finished.labels(_OUTCOME_LABELS[outcome.week_status]).inc()
        collections = {c.id: c for c, _, _ in found.values()}
        for collection_id in sorted(causes_of):
            await self.settle(conn, collections[collection_id], causes_of[collection_id])

    def _outcome(
        self,
        c: CollectionRow,
        week: WeekRow,
        known: KnownExecution | None,
        event: ExecutionCompleted,
    ) -> store.Outcome | None:
        """Where a completion leaves its week; None when it is not the current attempt's."""
        current = (
            known.attempt == week.attempt and not known.finished
            if known is not None
            # Unknown: the current attempt's, its completion overtaking its submission (the
            # two travel on different topics). An earlier attempt's execution is always
            # known, since its completion is what ended that attempt.
            else week.execution_id is None
        )
        if not current or week.status not in (WeekStatus.REQUESTED, WeekStatus.RUNNING):
            log.info(
                "completion %s of week %s ignored (attempt %s, %s)",
                event.execution_id,
                week.id,
                week.attempt,
                week.status.value,
            )
            return None
        outcome = classify(event.status, event.error)
        base = store.Outcome(
            week.id,
            week.attempt,
            event.execution_id,
            event.status,
            WeekStatus.SUCCEEDED,
            event.amc_execution_id,
        )
        if outcome == "succeeded":
            return replace(base, result=event.result)
        cancelled = c.status is CollectionStatus.CANCELLED
        if not should_retry(outcome, week.attempt, week.attempt_limit, cancelled=cancelled):
            return replace(base, week_status=WeekStatus.FAILED, error=event.error)
        wait = backoff_s(
            week.attempt, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
        )
        return replace(base, week_status=WeekStatus.PENDING, error=event.error, retry_in_s=wait)

    async def _lock(
        self, conn: Connection, executions: Sequence[tuple[UUID, UUID]]
    ) -> dict[UUID, tuple[CollectionRow, WeekRow, KnownExecution | None]]:
        """Of each (week id, execution id), by week id: the week's collection (all of them
        locked first, as everywhere), then the week and what is known of the execution, read
        under that lock."""
        week_ids = [week_id for week_id, _ in executions]
        collections = await store.lock_collections_of_weeks(conn, week_ids)
        if not collections:
            for week_id in week_ids:
                log.info("event for unknown week %s ignored", week_id)
            return {}
        weeks = await store.lock_weeks(conn, executions)
        for week_id in week_ids:
            if week_id not in weeks:
                log.info("event for unknown week %s ignored", week_id)
        return {
            week_id: (collections[week.collection_id], week, known)
            for week_id, (week, known) in weeks.items()
            if week.collection_id in collections  # locked: a week never changes collection
        }

    # --- maintenance --------------------------------------------------------------------------

    async def rerequest_stale(self, conn: Connection, c: CollectionRow) -> int:
        started_ns = time.time_ns()
        weeks = await store.rerequest_stale_weeks(conn, c.id, self.settings.reconcile_after_s)
        if weeks:
            # Same attempt, same origin id: the poller maps it to the execution it already has.
            await self._request(conn, c, [(w, "reconcile") for w in weeks], started_ns)
            log.info("re-requested %d week(s) of collection %s", len(weeks), c.id)
        return len(weeks)
