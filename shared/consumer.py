"""Idempotent, transactional consumption with dead-lettering.

Each service has one Kafka consumer (one group member per process, which the broker handles
best) subscribed to all topics it handles. It takes the records a fetch returns as one batch:

1. One transaction (shared/consumer_batch.py): decode and validate each record against the
   contract, record every `event_id` in `processed_events` with one insert (a redelivered
   event stops there), run the handlers, which may change state and enqueue events through
   the outbox; each record has its own span, continuing the trace from its headers. A record
   that is invalid, or whose handler raises a non-transient error, is applied again in a
   savepoint that it alone rolls back, and is marked for the DLQ; the others commit.
2. After the commit: publish the dead letters to `<topic>.dlq` with the reason.
3. Commit the Kafka offsets only after both.

Transient failures (database or network) retry the whole batch with backoff, then the batch
is sought back and redelivered, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid5

import asyncpg
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.config import KafkaSettings
from shared.consumer_batch import BatchApplier, Outcome, Route
from shared.contract import DeadLetter, Event, InvalidEventError, Topics, decode_event
from shared.metrics import MetricSet
from shared.outbox import Connection, Outbox
from shared.telemetry import continue_trace

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


@dataclass
class BatchTx(Tx):
    """What a batch handler gets: a `Tx` and the span of each of its events, in their order.
    No span is current during the call: an event emitted for one of them should carry that
    one's trace, `tx.outbox.enqueue(tx.conn, *out, trace_contexts=[trace_carrier(span)...])`
    (shared/telemetry.py), not `emit`."""

    spans: Sequence[Span] = ()


Handler = Callable[[Tx, E], Awaitable[None]]
BatchHandler = Callable[[BatchTx, Sequence[E]], Awaitable[None]]
DeadLetterHandler = Callable[[Tx, DeadLetter], Awaitable[None]]

# Namespace of the ids given to dead letters, which carry no event_id of their own.
DEAD_LETTER_NAMESPACE = UUID("5b0f8d4e-3c55-4a2e-9d0b-6b7e1c2f9a41")


def dead_letter_id(letter: DeadLetter) -> UUID:
    """A dead letter's de-duplication key: the refused record's place and its refuser. A
    consumer that dead-letters the same record again (it crashed before committing offsets)
    writes a letter with the same id."""
    return uuid5(
        DEAD_LETTER_NAMESPACE,
        f"{letter.source_topic}|{letter.partition}|{letter.offset}|{letter.consumer}",
    )


def _decode_dead_letter(raw: bytes) -> tuple[UUID, DeadLetter]:
    try:
        letter = DeadLetter.model_validate_json(raw)
    except ValueError as exc:
        raise InvalidEventError(f"invalid dead letter: {exc}") from None
    return dead_letter_id(letter), letter


@dataclass
class _Decoding(Generic[E]):
    """What every route of a contract event does first: decode it against its model."""

    model: type[E]
    outbox: Outbox

    def decode(self, raw: bytes) -> tuple[UUID, E]:
        event = decode_event(self.model, raw)
        return event.event_id, event


@dataclass
class _Route(_Decoding[E]):
    handler: Handler[E]

    async def handle(self, conn: Connection, topic: str, event: E) -> None:
        await self.handler(Tx(conn, self.outbox, topic), event)


@dataclass
class _BatchRoute(_Decoding[E]):
    handler: BatchHandler[E]

    async def handle(self, conn: Connection, topic: str, event: E) -> None:
        await self.handle_many(conn, topic, [event], [trace.get_current_span()])

    async def handle_many(
        self, conn: Connection, topic: str, events: Sequence[E], spans: Sequence[Span]
    ) -> None:
        await self.handler(BatchTx(conn, self.outbox, topic, spans), events)


@dataclass
class _DeadLetterRoute:
    handler: DeadLetterHandler
    outbox: Outbox

    def decode(self, raw: bytes) -> tuple[UUID, DeadLetter]:
        return _decode_dead_letter(raw)

    async def handle(self, conn: Connection, topic: str, event: DeadLetter) -> None:
        await self.handler(Tx(conn, self.outbox, topic), event)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.lag = metric.gauge(
            "amc_consumer_lag",
            "Records behind the end of the log, for the partitions this replica owns",
            "topic",
            "partition",
        )
        self.consumed = metric.counter(
            "amc_events_consumed", "Events consumed, by topic and outcome", "topic", "outcome"
        )
        self.latency = metric.histogram(
            "amc_handler_seconds", "Time to handle one event, transaction included", "topic"
        )


async def _message_itself(msg: StreamMessage[Any]) -> StreamMessage[Any]:
    """`_consume` takes the message itself as its body and decodes each raw record against the
    contract. This spares FastStream parsing every body of the batch as JSON, unasked
    (measured: 6% of the consumer's time), and a `Context`-annotated parameter, which
    fast_depends resolves in a worker thread: a thread hop per batch."""
    return msg


def _poll(
    max_records: int, timeout_ms: int
) -> Callable[[AIOKafkaConsumer], Awaitable[tuple[Any, ...]]]:
    """The subscriber's poll without FastStream's sleep after a poll that found nothing (as
    long as the poll timeout: an idle consumer was deaf half the time). `getmany` returns as
    soon as records arrive, so the timeout only sets how often an idle consumer wakes."""

    async def poll(consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return tuple(itertools.chain.from_iterable(batches.values()))

    return poll


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
        batch_size: int = 100,
    ) -> None:
        self._broker = broker
        self._pool: asyncpg.Pool[Any] | None = pool
        self._lag_failed = False
        self._outbox = outbox
        self._topics = topics
        self._group_id = group_id
        self._kafka = kafka
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._tracer = trace.get_tracer("amc.consumer")
        self._routes: dict[str, Route] = {}
        self._applier = BatchApplier(routes=self._routes, group_id=group_id, retryable=RETRYABLE)

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
        self._routes[name] = _Route(model, self._outbox, handler)

    def on_batch(self, model: type[E]) -> Callable[[BatchHandler[E]], BatchHandler[E]]:
        """Register a handler that takes the events of one type in a batch together:
        `@consumer.on_batch(ExecutionRequested)`, `async def h(tx: BatchTx, events)`. Worth
        it where handling is a plain insert: one statement for the batch, not one per event.
        It may be called with any part of the batch (a part that failed is retried one event
        at a time, each in a savepoint); the guarantees are those of `on`."""

        def register(handler: BatchHandler[E]) -> BatchHandler[E]:
            name = self._topics.name(model.topic)
            if name in self._routes:
                raise ValueError(f"{model.topic} already has a handler")
            self._routes[name] = _BatchRoute(model, self._outbox, handler)
            return handler

        return register

    def on_dead_letters(
        self, source: type[Event]
    ) -> Callable[[DeadLetterHandler], DeadLetterHandler]:
        """Register the handler of `<source topic>.dlq`. Letters have no event_id: their
        de-duplication key is `dead_letter_id` (the refused record's topic, partition,
        offset and refuser)."""

        def register(handler: DeadLetterHandler) -> DeadLetterHandler:
            name = self._topics.dlq(source.topic)
            if name in self._routes:
                raise ValueError(f"{source.topic} dead letters already have a handler")
            self._routes[name] = _DeadLetterRoute(handler, self._outbox)
            return handler

        return register

    def install(self) -> None:
        """Create the one subscriber for every registered topic."""
        if not self._routes:
            return
        subscriber = self._broker.subscriber(
            *self._routes,
            group_id=self._group_id,
            batch=True,
            max_records=self._batch_size,
            batch_timeout_ms=self._kafka.poll_timeout_ms,
            fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            session_timeout_ms=self._kafka.session_timeout_ms,
            heartbeat_interval_ms=self._kafka.heartbeat_interval_ms,
            title=f"{self._group_id}:events",
            decoder=_message_itself,
        )
        subscriber(self._consume)
        vars(subscriber)["get_msg"] = _poll(self._batch_size, self._kafka.poll_timeout_ms)

    async def _consume(self, msg: Any) -> None:
        records: tuple[Any, ...] = tuple(msg.raw_message)
        if not records:
            return
        started = time.perf_counter()
        try:
            outcomes = await self._handle_batch(records)
            for record, (outcome, reason, kind) in zip(records, outcomes, strict=True):
                if outcome == "dead_lettered":
                    await self._dead_letter(record, reason, kind)
        except Exception as exc:
            # Not handled and not dead-lettered (retries exhausted, or the DLQ publish failed):
            # seek back so the batch is redelivered; never commit past it. Redelivery is safe:
            # what did commit is recorded in processed_events.
            log.warning("will redeliver %d record(s): %s", len(records), exc)
            for record in records:
                self._metrics.consumed.labels(record.topic, "redelivered").inc()
            await asyncio.sleep(1.0)
            await msg.nack()
            return
        elapsed = (time.perf_counter() - started) / len(records)
        # One label lookup per topic and outcome in the batch, not one per record.
        pairs = zip(records, outcomes, strict=True)
        tally = collections.Counter((record.topic, outcome) for record, (outcome, _, _) in pairs)
        for (topic, outcome), n in tally.items():
            self._metrics.consumed.labels(topic, outcome).inc(n)
        for topic, n in collections.Counter(record.topic for record in records).items():
            latency = self._metrics.latency.labels(topic)
            for _ in range(n):
                latency.observe(elapsed)
        await msg.ack()
        await self._observe_lag(msg)

    async def _observe_lag(self, msg: KafkaMessage) -> None:
        consumer: Any = getattr(msg, "consumer", None)
        if consumer is None:
            return
        try:
            async with asyncio.timeout(0.5):
                for tp in consumer.assignment():
                    highwater = consumer.highwater(tp)
                    if highwater is not None:
                        lag = max(highwater - await consumer.position(tp), 0)
                        self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception as exc:  # a metric must never disturb consumption
            # Once as a warning (the lag gauge goes stale); after that, per batch, only at
            # debug level, or a broker hiccup would flood the log.
            level = logging.DEBUG if self._lag_failed else logging.WARNING
            self._lag_failed = True
            log.log(level, "could not read consumer lag (amc_consumer_lag goes stale): %r", exc)

    async def _handle_batch(self, records: tuple[Any, ...]) -> list[Outcome]:
        """Apply a batch in one transaction (see shared/consumer_batch.py), with retries."""
        if self._pool is None:
            raise RuntimeError("consumer has no database pool attached")
        pool = self._pool
        items = self._applier.decode(records)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
            stop=stop_after_attempt(self._max_attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._applier.apply(pool, items)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _dead_letter(self, record: Any, reason: str, kind: str) -> None:
        topic: str = record.topic
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
            headers={k: v.decode(errors="replace") for k, v in record.headers},
            payload=(record.value or b"").decode(errors="replace"),
        )
        dlq = f"{topic}.dlq"
        # In the record's trace: whoever sent it sees in Jaeger where it ended, and why.
        with continue_trace(
            self._tracer,
            f"send {dlq}",
            letter.headers,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": dlq,
                "amc.dlq.source_offset": letter.offset,
                "amc.dlq.error_type": kind,
            },
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
            log.warning(
                "dead-lettered %s offset %s: %s",
                topic,
                letter.offset,
                reason,
                extra={"topic": topic},
            )
            headers = {"x-dlq-reason": reason[:500], "x-dlq-consumer": self._group_id}
            propagate.inject(headers)
            await self._broker.publish(
                letter.model_dump_json().encode(), topic=dlq, key=key, headers=headers
            )
