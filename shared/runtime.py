"""The parts every service runs: pool, broker, consumer, outbox relay and background loops.

A service builds one `ServiceRuntime`, registers its event handlers on `runtime.consumer` and
its periodic loops with `runtime.background`, and hands it to `shared.http.create_app`.
Shutdown order matters: stop consuming (in-flight handlers finish), stop background loops,
drain the outbox, close the broker and the pool, flush spans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from shared.broker import make_broker
from shared.config import ServiceSettings
from shared.consumer import ConsumerMetrics, EventConsumer
from shared.contract import Topics
from shared.db import apply_migrations, create_pool
from shared.db.errors import DATABASE_TROUBLE
from shared.metrics import MetricSet
from shared.outbox import Outbox, OutboxRelay
from shared.ownership import Ownership
from shared.publisher import KafkaRecordPublisher
from shared.supervise import Loop, supervise

log = logging.getLogger(__name__)

GaugeRefresher = Callable[["asyncpg.Pool[Any]"], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations_dir: Path,
        run_migrations: bool = True,
        owner_lock: bool = False,
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.schema = settings.schema_name
        self.migrations_dir = migrations_dir
        self.run_migrations = run_migrations
        self.topics = Topics(settings.kafka.topic_prefix)
        self.registry = CollectorRegistry()
        self.tracer = trace.get_tracer(f"amc.{self.name}")
        self.broker = make_broker(
            settings.kafka,
            client_id=f"amc-{self.name}",
            registry=self.registry,
            graceful_timeout_s=settings.graceful_timeout_s,
        )
        self.outbox = Outbox(self.schema, self.topics)
        self.publisher = KafkaRecordPublisher(
            settings.kafka, client_id=f"amc-{self.name}-outbox", registry=self.registry
        )
        self.consumer = EventConsumer(
            broker=self.broker,
            pool=None,
            outbox=self.outbox,
            topics=self.topics,
            group_id=f"{settings.kafka.topic_prefix}amc-{self.name}",
            kafka=settings.kafka,
            metrics=ConsumerMetrics(self.registry),
            # Each batch costs a transaction and an offset commit whatever its size: a relay
            # that publishes hundreds at a time is best followed in batches as large.
            batch_size=settings.consumer_batch_size,
        )
        self._loops: list[tuple[str, Loop]] = []
        self._gauges: list[GaugeRefresher] = [self._outbox_gauges]
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._pool: asyncpg.Pool[Any] | None = None
        # Services whose replicas own rows while working on them (shared/ownership.py).
        self.ownership = (
            Ownership(settings.database_url, f"{self.name} owner") if owner_lock else None
        )
        self.relay: OutboxRelay | None = None
        metric = MetricSet(self.registry)
        self._outbox_backlog = metric.gauge("amc_outbox_backlog", "Outbox rows not yet published")
        self._outbox_age = metric.gauge(
            "amc_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row"
        )

    @property
    def pool(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise RuntimeError(f"{self.name} runtime is not started")
        return self._pool

    def background(self, name: str) -> Callable[[Loop], Loop]:
        """Register a loop that runs while the service runs; it must return once stop is set."""

        def register(loop: Loop) -> Loop:
            self._loops.append((name, loop))
            return loop

        return register

    def gauges(self, refresh: GaugeRefresher) -> GaugeRefresher:
        """Register a refresher of gauges read from the database; run on every scrape."""
        self._gauges.append(refresh)
        return refresh

    async def refresh_gauges(self, timeout_s: float = 2.0) -> None:
        """Bring database-backed gauges up to date; a slow or failing query leaves the old
        values (and is logged) rather than failing the scrape."""
        if self._pool is None:
            return
        for refresh in self._gauges:
            try:
                async with asyncio.timeout(timeout_s):
                    await refresh(self._pool)
            except DATABASE_TROUBLE as exc:
                log.warning("could not refresh gauges (%s): %s", refresh.__name__, exc)

    async def _outbox_gauges(self, pool: asyncpg.Pool[Any]) -> None:
        row = await pool.fetchrow(
            """SELECT count(*) AS backlog,
                      coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age
               FROM outbox WHERE sent_at IS NULL"""
        )
        assert row is not None
        self._outbox_backlog.set(row["backlog"])
        self._outbox_age.set(float(row["age"]))

    async def start(self) -> None:
        s = self.settings
        if self.run_migrations:
            await apply_migrations(s.database_url, self.schema, self.migrations_dir)
        self._pool = await create_pool(
            s.database_url, self.schema, min_size=s.db_pool_min, max_size=s.db_pool_max
        )
        if self.ownership is not None:
            # Before any loop runs: a claim needs the owner's lock held.
            await self.ownership.start()
        self.consumer.attach_pool(self._pool)
        self.consumer.install()
        await self.broker.start()
        await self.publisher.start()
        self.relay = OutboxRelay(
            self._pool,
            self.schema,
            self.publisher,
            listen_dsn=s.database_url,
            batch_size=s.outbox_batch_size,
            poll_interval_s=s.outbox_poll_interval_s,
            min_batch_interval_s=s.outbox_min_batch_interval_s,
            retention=timedelta(hours=s.outbox_retention_hours),
            processed_retention=timedelta(days=s.processed_events_retention_days),
        )
        self._stop.clear()
        self._tasks = [asyncio.create_task(self.relay.run(), name=f"{self.name}:outbox")]
        if self.ownership is not None:
            watch = self.ownership.watch(self._stop)
            self._tasks.append(asyncio.create_task(watch, name=f"{self.name}:ownership"))
        self._tasks += [
            asyncio.create_task(
                supervise(f"{self.name} loop {name}", loop, self._stop), name=f"{self.name}:{name}"
            )
            for name, loop in self._loops
        ]
        log.info("%s started", self.name, extra={"service": self.name})

    async def stop(self) -> None:
        for subscriber in self.broker.subscribers:
            await self._stop_part("event subscriber", subscriber.stop)
        self._stop.set()
        if self.relay is not None:
            self.relay.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.settings.graceful_timeout_s)
            if pending:
                log.warning(
                    "%s: %s did not stop within %.0f s; cancelled",
                    self.name,
                    ", ".join(sorted(task.get_name() for task in pending)),
                    self.settings.graceful_timeout_s,
                )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._stop_part("outbox publisher", self.publisher.stop)
        await self._stop_part("broker", self.broker.stop)
        if self.ownership is not None:
            # Last of the loops' parts: jobs drained above kept their rows until here.
            await self._stop_part("owner lock", self.ownership.close)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("%s stopped", self.name, extra={"service": self.name})

    async def _stop_part(self, what: str, stop: Callable[[], Awaitable[object]]) -> None:
        """Shutdown goes on past a part that fails to stop (the process is ending and the
        broker and database recover what it held), but the failure is logged once."""
        try:
            await stop()
        except Exception as exc:
            log.warning("%s: stopping the %s failed: %r", self.name, what, exc)

    async def check_ready(self) -> dict[str, str]:
        """Readiness: database and broker both answer."""
        problems: dict[str, str] = {}
        try:
            async with asyncio.timeout(2.0):
                await self.pool.fetchval("SELECT 1")
        except (OSError, TimeoutError, RuntimeError, asyncpg.PostgresError) as exc:
            problems["database"] = type(exc).__name__
        try:
            if not await self.broker.ping(timeout=2.0):
                problems["broker"] = "unreachable"
        except (KafkaError, OSError) as exc:
            problems["broker"] = type(exc).__name__
        return problems
