"""Idempotent, transactional consumption with dead-lettering.

Each service has one Kafka consumer (one group member per process, which the broker handles
best) subscribed to all topics it handles. For each message:

1. Decode and validate against the contract; a bad payload goes to `<topic>.dlq` at once.
2. In one transaction: record `event_id` in `processed_events` (a redelivery stops here) and
   run the handler, which may change state and enqueue events through the outbox.
3. Commit the Kafka offset only after that transaction committed.

Transient failures (database or network) are retried with backoff in place, then the message
is sought back and redelivered, never dead-lettered. A `PermanentError`, or any other
exception from a handler, dead-letters the message with the reason, and consumption goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import CollectorRegistry, Counter, Histogram
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.config import KafkaSettings
from shared.contract import DeadLetter, Event, InvalidEventError, Topics, decode_event
from shared.outbox import Connection, Outbox

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


class PermanentError(Exception):
    """A handler's refusal that no retry can fix; the message is dead-lettered with this text."""


class TransientError(Exception):
    """A handler's signal to retry later (for example, a dependency that is not there yet)."""


RETRYABLE: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, TransientError)


@dataclass
class Tx:
    """What a handler gets: the open transaction, and the outbox to emit events through."""

    conn: Connection
    outbox: Outbox
    topic: str

    async def emit(self, *events: Event) -> None:
        await self.outbox.enqueue(self.conn, *events)


Handler = Callable[[Tx, E], Awaitable[None]]


@dataclass
class _Route(Generic[E]):
    model: type[E]
    handler: Handler[E]


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry
    consumed: Counter = field(init=False)
    latency: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.consumed = Counter(
            "amc_events_consumed",
            "Events consumed, by topic and outcome",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "amc_handler_seconds",
            "Time to handle one event, transaction included",
            ["topic"],
            registry=self.registry,
        )


class EventConsumer:
    def __init__(
        self,
        *,
        broker: KafkaBroker,
        pool: asyncpg.Pool[Any] | None,
        outbox: Outbox,
        topics: Topics,
        group_id: str,
        kafka: KafkaSettings,
        metrics: ConsumerMetrics,
        max_attempts: int = 6,
    ) -> None:
        self._broker = broker
        self._pool: asyncpg.Pool[Any] | None = pool
        self._outbox = outbox
        self._topics = topics
        self._group_id = group_id
        self._kafka = kafka
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._routes: dict[str, _Route[Any]] = {}

    def attach_pool(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    def on(self, model: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the handler of one event type: `@consumer.on(ScheduleDue)`."""

        def register(handler: Handler[E]) -> Handler[E]:
            self.add(model, handler)
            return handler

        return register

    def add(self, model: type[E], handler: Handler[E]) -> None:
        name = self._topics.name(model.topic)
        if name in self._routes:
            raise ValueError(f"{model.topic} already has a handler")
        self._routes[name] = _Route(model, handler)

    def install(self) -> None:
        """Create the one subscriber for every registered topic."""
        if not self._routes:
            return
        subscriber = self._broker.subscriber(
            *self._routes,
            group_id=self._group_id,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=self._kafka.heartbeat_interval_ms,
            title=f"{self._group_id}:events",
        )
        subscriber(self._consume)

    async def _consume(self, msg: KafkaMessage) -> None:
        record: Any = msg.raw_message
        topic: str = record.topic
        route = self._routes[topic]
        started = time.perf_counter()
        try:
            try:
                outcome = await self.handle(route, topic, msg.body)
            except InvalidEventError as exc:
                await self._dead_letter(msg, topic, str(exc), "InvalidEventError")
                outcome = "dead_lettered"
            except _Exhausted:
                raise
            except Exception as exc:  # a handler bug must not block the partition forever
                log.exception("handler for %s failed permanently", topic, extra={"topic": topic})
                reason = f"{type(exc).__name__}: {exc}"
                await self._dead_letter(msg, topic, reason, type(exc).__name__)
                outcome = "dead_lettered"
        except Exception as exc:
            # Not handled and not dead-lettered (retries exhausted, or the DLQ publish failed):
            # seek back so the message is redelivered; never commit past it.
            log.warning(
                "will redeliver %s offset %s: %s", topic, record.offset, exc, extra={"topic": topic}
            )
            self._metrics.consumed.labels(topic, "redelivered").inc()
            await asyncio.sleep(1.0)
            await msg.nack()
            return
        self._metrics.consumed.labels(topic, outcome).inc()
        self._metrics.latency.labels(topic).observe(time.perf_counter() - started)
        await msg.ack()

    async def handle(self, route: _Route[Any], topic: str, body: bytes) -> str:
        """Decode and apply one payload exactly once; returns 'processed' or 'duplicate'."""
        event = decode_event(route.model, body)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._apply(route, topic, event)
        except RETRYABLE as exc:
            raise _Exhausted(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(self, route: _Route[Any], topic: str, event: Event) -> str:
        if self._pool is None:
            raise RuntimeError("consumer has no database pool attached")
        async with self._pool.acquire() as conn, conn.transaction():
            first = await conn.fetchval(
                """INSERT INTO processed_events (event_id, topic) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING true""",
                event.event_id,
                topic,
            )
            if not first:
                return "duplicate"
            await route.handler(Tx(conn, self._outbox, topic), event)
        return "processed"

    async def _dead_letter(self, msg: KafkaMessage, topic: str, reason: str, kind: str) -> None:
        record: Any = msg.raw_message
        key: bytes | None = record.key
        letter = DeadLetter(
            source_topic=topic,
            partition=record.partition,
            offset=record.offset,
            consumer=self._group_id,
            reason=reason[:4000],
            error_type=kind,
            failed_at=datetime.now(UTC),
            key=key.decode(errors="replace") if key is not None else None,
            headers={k: str(v) for k, v in msg.headers.items()},
            payload=msg.body.decode(errors="replace"),
        )
        log.warning(
            "dead-lettered %s offset %s: %s", topic, letter.offset, reason, extra={"topic": topic}
        )
        await self._broker.publish(
            letter.model_dump_json().encode(),
            topic=f"{topic}.dlq",
            key=key,
            headers={"x-dlq-reason": reason[:500], "x-dlq-consumer": self._group_id},
        )


class _Exhausted(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
