"""The firing loop: claim due schedules, write their runs, advance them, emit `schedule.due`.

The loop sleeps until the earliest next fire time (bounded by `max_sleep_s`) and wakes at once
on an in-process signal or a NOTIFY on the scheduler's channel (sent when the API creates or
changes a schedule, possibly on another replica). Each batch of due schedules is claimed with
`FOR UPDATE SKIP LOCKED`; its run rows (unique per schedule and fire time), new next fire times
and outbox events are written in that one transaction, so any number of replicas fire each
fire time exactly once, and a crash at any point either fires a batch completely or not at all.
What is due a moment later is claimed and written ahead (`fire_ahead`) in one transaction that
commits at its fire time, so the runs appear when due, not a batch's work after; the lead is
the time those schedules took to prepare (doubled), at most `fire_ahead_s`.

Each emitted run is its own trace: a root span "schedule fire" from the start of its batch to
the commit, under which its `schedule.due` is published (and everything downstream follows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer
from prometheus_client import CollectorRegistry

from services.scheduler import store
from services.scheduler.batch import Batch, plan_batch
from services.scheduler.logic import FiringConfig
from services.scheduler.runs import Clock, due_event, start_fire_span
from services.scheduler.settings import SchedulerSettings
from shared.contract import (
    ScheduleDue,
    SchedulePaused,
    WorkflowRun,
)
from shared.doorbell import Doorbell
from shared.metrics import MetricSet
from shared.outbox import Connection, Outbox
from shared.telemetry import end_together, trace_carrier

log = logging.getLogger(__name__)


def notify_channel(schema: str) -> str:
    return f"amc_scheduler_{schema}"[:63]


# Preparing ahead starts at least this long before a fire time.
LEAD_MARGIN_S = 0.1


class FiringMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.runs = metric.counter(
            "amc_scheduler_runs",
            "Schedule runs written by the firing loop, by kind and state",
            "kind",
            "state",
        )
        # Sub-second buckets for a healthy loop; 60/300/900/3600 s for the AmcScheduleLate
        # alert (p95 > 300 s) and for catch-up after an outage.
        self.lateness = metric.histogram(
            "amc_schedule_lateness_seconds",
            "Lateness of emitted schedule runs: time from a run's fire time to the commit of "
            "the run and its schedule.due event (in the outbox, to be published)",
            buckets=(
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                120,
                300,
                600,
                900,
                1800,
                3600,
                7200,
            ),
        )
        self.batch_seconds = metric.histogram(
            "amc_scheduler_claim_batch_seconds", "Time to claim and fire one batch of due schedules"
        )


@dataclass(frozen=True)
class _Fired:
    """One claimed batch as written: its plan, the run ids inserted and the events sent."""

    claimed: int
    batch: Batch
    inserted: set[UUID]
    events: list[ScheduleDue]


class Firer:
    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool[Any]],
        outbox: Outbox,
        settings: SchedulerSettings,
        *,
        now: Clock,
        metrics: FiringMetrics,
        tracer: Tracer | None = None,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool_of = pool_of
        self._after_commit = after_commit
        # Seconds to prepare one due schedule (claim, plan, write), as last measured.
        self._prepare_s_each = 0.002
        self._outbox = outbox
        self._settings = settings
        self._now = now
        self._metrics = metrics
        self._tracer = tracer or trace.get_tracer("amc.scheduler")
        self._bell = Doorbell(
            notify_channel(settings.schema_name), dsn=settings.database_url, what="scheduler"
        )
        self.cfg = FiringConfig(
            late_grace=timedelta(seconds=settings.late_grace_s),
            catch_up_window=timedelta(seconds=settings.catch_up_window_s),
            max_catch_up_runs=settings.max_catch_up_runs,
            max_enumerated=settings.max_missed_enumerated,
        )

    @property
    def channel(self) -> str:
        return self._bell.channel

    def wake(self) -> None:
        self._bell.ring()

    async def notify(self, conn: Connection) -> None:
        """Tell every replica's loop (after commit) that a schedule was created or changed."""
        await conn.execute("SELECT pg_notify($1, '')", self._bell.channel)

    # --- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        # Without LISTEN the loop still wakes at the earliest fire time it knows and at least
        # every max_sleep_s.
        await self._bell.listen()
        backoff = 0.2
        try:
            while not stop.is_set():
                self._bell.clear()
                try:
                    claimed = await self.fire_due()
                    earliest = await store.earliest_due(self._pool_of())
                    lead = await self._lead_before(earliest)
                    if (
                        earliest is not None
                        and 0 < (earliest - self._now()).total_seconds() <= lead
                        and await self.fire_ahead(earliest)
                    ):
                        continue  # committed at its fire time: look for the next one at once
                    backoff = 0.2
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("firing loop failed, retrying in %.1fs: %s", backoff, exc)
                    await self._bell.sleep(stop, backoff, wakeable=False)
                    backoff = min(backoff * 2, 10.0)
                    continue
                await self._bell.listen()
                delay = self._settings.max_sleep_s
                if earliest is not None:
                    # A millisecond past the fire time, so the wake-up does not come a hair early;
                    # when it is further away than the lead, wake up the lead before it.
                    until = (earliest - self._now()).total_seconds() + 0.001
                    if until > lead:
                        until -= lead
                    delay = min(max(until, 0.0), delay)
                    if delay == 0.0 and not claimed:
                        # Due rows we could not claim are held by another replica (or by an
                        # event handler): give it a moment rather than spin.
                        delay = 0.02
                await self._bell.sleep(stop, delay)
        finally:
            await self._bell.close()

    async def _lead_before(self, at: datetime | None) -> float:
        """How long before `at` to start preparing what is due then: the time its schedules
        took to prepare so far, doubled, at most `fire_ahead_s`. No longer, so the relay
        publishes the runs fired last before the next preparation takes the event loop."""
        most = self._settings.fire_ahead_s
        if at is None or not 0 < (at - self._now()).total_seconds() <= most:
            return most
        due = await store.count_due(self._pool_of(), at)
        return min(most, LEAD_MARGIN_S + 2 * due * self._prepare_s_each)

    # --- claiming and firing -------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fire every due schedule, batch after batch; returns how many schedules it claimed."""
        total = 0
        while True:
            claimed = await self.fire_batch()
            total += claimed
            if claimed < self._settings.claim_batch_size:
                break
        while True:
            retried = await self.retry_batch()
            total += retried
            if retried < self._settings.claim_batch_size:
                return total

    async def retry_batch(self) -> int:
        """Send the next attempt of every run whose retry is due: the run as first sent (same
        run id, fire time, window and parameters), one attempt higher, each under its own root
        span. Claimed with SKIP LOCKED, so each attempt is sent by one replica once."""
        spans: list[Span] = []
        try:
            async with self._pool_of().acquire() as conn, conn.transaction():
                now = self._now()
                rows = await store.claim_due_retries(conn, now, self._settings.claim_batch_size)
                events: list[ScheduleDue] = []
                for row in rows:
                    attempt = row.attempt + 1
                    event = due_event(
                        row.schedule_id,
                        row.id,
                        row.fire_time,
                        WorkflowRun.model_validate(row.run),
                        now,
                        attempt=attempt,
                    )
                    await store.start_attempt(conn, row.id, attempt, event.event_id, now)
                    events.append(event)
                    span = start_fire_span(self._tracer, event, row.kind)
                    span.set_attribute("amc.attempt", attempt)
                    spans.append(span)
                await self._outbox.enqueue(
                    conn, *events, trace_contexts=[trace_carrier(span) for span in spans]
                )
        except BaseException as exc:
            end_together(spans, exc)
            raise
        end_together(spans)
        for row in rows:
            self._metrics.runs.labels(row.kind, "RETRIED").inc()
        return len(rows)

    async def fire_batch(self) -> int:
        """Fire one batch of schedules due now; returns how many schedules it claimed."""
        started = time.perf_counter()
        spans: list[Span] = []
        try:
            async with self._pool_of().acquire() as conn, conn.transaction():
                fired = await self._fire_into(conn, self._now(), spans, time.time_ns())
        except BaseException as exc:
            end_together(spans, exc)
            raise
        self._committed([fired], spans, started)
        return fired.claimed

    async def fire_ahead(self, at: datetime) -> int:
        """Prepare the schedules due at `at` (a moment away) and commit them at `at`.

        Batch after batch is claimed and written in one transaction while the next batch can
        still be ready by `at`; the commit then waits for `at`, so the runs and events appear
        at their fire time rather than a batch's work after it. What was not prepared in time
        is fired after `at` by `fire_due`. The claimed schedules stay locked until the commit:
        a change to one of them in that short lead waits for it, as if made after the fire.
        Returns how many schedules were claimed; with none, nothing waits for `at`."""
        started = time.perf_counter()
        spans: list[Span] = []
        batches: list[_Fired] = []
        try:
            async with self._pool_of().acquire() as conn, conn.transaction():
                while True:
                    round_started = time.perf_counter()
                    fired = await self._fire_into(conn, at, spans, time.time_ns())
                    batches.append(fired)
                    took = time.perf_counter() - round_started
                    left = (at - self._now()).total_seconds()
                    if fired.claimed < self._settings.claim_batch_size or left < took:
                        break
                claimed = sum(b.claimed for b in batches)
                if not claimed:
                    return 0
                took = time.perf_counter() - started
                self._prepare_s_each = (self._prepare_s_each + took / claimed) / 2
                left = (at - self._now()).total_seconds()
                if left > 0:
                    await asyncio.sleep(left)
        except BaseException as exc:
            end_together(spans, exc)
            raise
        self._committed(batches, spans, started)
        return claimed

    async def _fire_into(
        self, conn: Connection, now: datetime, spans: list[Span], started_ns: int
    ) -> _Fired:
        """Claim up to a batch of schedules due at `now` and write their runs, next fire
        times and events in `conn`'s transaction; each emitted run's span joins `spans`."""
        rows = await store.claim_due(conn, now, self._settings.claim_batch_size)
        if not rows:
            return _Fired(0, plan_batch([], {}, now, self.cfg), set(), [])
        stale_before = now - timedelta(seconds=self._settings.run_stale_after_s)
        counts = await store.open_run_counts(conn, [r.id for r in rows], stale_before)
        batch = plan_batch(rows, counts, now, self.cfg)
        inserted = await store.insert_runs(conn, batch.runs)
        events: list[ScheduleDue] = []
        batch_spans: list[Span] = []
        for event, kind in zip(batch.events, batch.kinds, strict=True):
            if event.run_id in inserted:
                events.append(event)
                batch_spans.append(
                    start_fire_span(self._tracer, event, kind, start_time=started_ns)
                )
        spans.extend(batch_spans)
        await store.advance(conn, batch.ids, batch.next_fire_ats, batch.last_fire_ats)
        # Each run's schedule.due is published under its own run's span.
        await self._outbox.enqueue(
            conn, *events, trace_contexts=[trace_carrier(span) for span in batch_spans]
        )
        for schedule_id, reason in batch.broken:
            await self._pause_broken(conn, schedule_id, reason, now)
        return _Fired(len(rows), batch, inserted, events)

    def _committed(self, batches: Sequence[_Fired], spans: Sequence[Span], started: float) -> None:
        """After the commit: end the runs' spans, wake the relay, count and time the runs."""
        end_together(spans)
        if spans:
            self._after_commit()
        committed = self._now()
        # Counted per kind and state: a burst is thousands of runs of a few of each, and the
        # relay waits for this before it publishes them.
        written: Counter[tuple[str, str]] = Counter()
        for fired in batches:
            written.update(
                (run.kind, run.state) for run in fired.batch.runs if run.id in fired.inserted
            )
            for event in fired.events:
                lateness = (committed - event.fire_time).total_seconds()
                self._metrics.lateness.observe(max(0.0, lateness))
        for (kind, state), count in written.items():
            self._metrics.runs.labels(kind, state).inc(count)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _pause_broken(
        self, conn: Connection, schedule_id: UUID, reason: str, now: datetime
    ) -> None:
        row = await store.pause(conn, schedule_id, reason[:2000], now)
        await self._outbox.enqueue(
            conn,
            SchedulePaused(
                schedule_id=schedule_id,
                reason=row.paused_reason,
                consecutive_failures=row.consecutive_failures,
                occurred_at=now,
            ),
        )
