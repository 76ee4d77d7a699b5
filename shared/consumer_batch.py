"""One fetched batch of records applied in one transaction.

The batch costs one de-duplication insert (every event id at once) and one pass of the
handlers, with no savepoint around a record that does not fail: a savepoint costs two round
trips to the database per record, which was most of the consumer's time.

A handler that fails for good outside a savepoint spoils the transaction, so the pass is
rolled back and the batch applied again with that record in a savepoint of its own; its
de-duplication row goes inside the savepoint too, so a dead-lettered record is not recorded as
handled and its redelivery is dead-lettered again, as before. Should a second record of the
batch fail too, every record from it onwards gets its own savepoint: a batch takes at most
three passes however many of its records fail. A record whose event id repeats an earlier one
of the same batch (the relay sent it twice) always gets a savepoint, which makes it a duplicate
once the first is handled, or handles it if the first was dead-lettered.

A route with a batch handler (`BatchRoute`) takes each run of its records that stand next to
each other in the batch in one call, so a handler that is a plain insert costs one statement
per run rather than one per record; every record keeps its own span. Should that call fail,
the pass is rolled back and every record of the run is applied again alone, in a savepoint
(one more pass for each run that fails).

Transient errors are not caught here: the caller retries the whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import asyncpg
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.contract import Event, InvalidEventError
from shared.outbox import Connection
from shared.telemetry import event_span_attributes, tracing_installed

log = logging.getLogger(__name__)

Outcome = tuple[str, str, str]  # (processed|duplicate|dead_lettered, reason, error type)


class Route(Protocol):
    """How one topic's records are decoded and handled."""

    def decode(self, raw: bytes) -> tuple[UUID, Any]: ...

    async def handle(self, conn: Connection, topic: str, event: Any) -> None: ...


@runtime_checkable
class BatchRoute(Route, Protocol):
    """A route whose handler also takes many events at once, each with its record's span."""

    async def handle_many(
        self, conn: Connection, topic: str, events: Sequence[Any], spans: Sequence[Span]
    ) -> None: ...


@dataclass(frozen=True)
class Item:
    """A record with its decoding, which does not change between passes."""

    record: Any
    route: Route
    event_id: UUID | None = None
    event: Any = None
    invalid: str = ""  # why the record could not be decoded
    batch: BatchRoute | None = None  # the route, when it takes runs of records in one call


@dataclass
class Guards:
    """Which records of the batch get a savepoint in the next pass."""

    size: int
    indexes: set[int] = field(default_factory=set)
    start: int = -1  # every record from here on; -1: none
    failures: int = 0

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.size

    def __contains__(self, index: int) -> bool:
        return index in self.indexes or index >= self.start

    def failed(self, index: int) -> None:
        self.failures += 1
        if self.failures == 1:
            self.indexes.add(index)
        else:
            self.start = min(self.start, index)


class HandlerFailed(Exception):
    """A handler outside a savepoint failed for good: this pass is void."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class RunFailed(Exception):
    """A batch handler failed for good on a run of records: this pass is void, and which
    record it was is not known, so each of them is applied alone next time."""

    def __init__(self, indexes: range) -> None:
        super().__init__(indexes)
        self.indexes = indexes


class BatchApplier:
    def __init__(
        self,
        *,
        routes: dict[str, Route],
        group_id: str,
        retryable: tuple[type[BaseException], ...],
    ) -> None:
        self._routes = routes
        self._group_id = group_id
        self._retryable = retryable
        self._tracer = trace.get_tracer("amc.consumer")
        self._traced = True  # whether spans are recorded, looked up once per batch

    def decode(self, records: Sequence[Any]) -> list[Item]:
        batched = {
            topic: route for topic, route in self._routes.items() if isinstance(route, BatchRoute)
        }
        items = []
        for record in records:
            route = self._routes[record.topic]
            try:
                event_id, event = route.decode(record.value or b"")
            except InvalidEventError as exc:
                items.append(Item(record, route, invalid=str(exc)))
            else:
                items.append(Item(record, route, event_id, event, batch=batched.get(record.topic)))
        return items

    async def apply(self, pool: asyncpg.Pool[Any], items: Sequence[Item]) -> list[Outcome]:
        self._traced = tracing_installed()
        guards = Guards(len(items))
        seen: set[UUID] = set()
        for index, item in enumerate(items):
            if item.event_id in seen:
                guards.indexes.add(index)
            elif item.event_id is not None:
                seen.add(item.event_id)
        while True:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    return await self._pass(conn, items, guards)
            except HandlerFailed as failed:
                guards.failed(failed.index)
            except RunFailed as failed:
                guards.indexes.update(failed.indexes)

    async def _pass(self, conn: Connection, items: Sequence[Item], guards: Guards) -> list[Outcome]:
        plain = [
            item
            for index, item in enumerate(items)
            if item.event_id is not None and index not in guards
        ]
        fresh = await self._record(conn, plain)
        outcomes: list[Outcome] = []
        index = 0
        while index < len(items):
            item = items[index]
            if item.batch is not None and index not in guards:
                end = index + 1
                while end < len(items) and end not in guards and _joins_run(items[end], item):
                    end += 1
                outcomes += await self._run(conn, items, range(index, end), fresh)
                index = end
            else:
                outcomes.append(await self._one(conn, item, index, guards, fresh))
                index += 1
        return outcomes

    async def _one(
        self, conn: Connection, item: Item, index: int, guards: Guards, fresh: set[UUID]
    ) -> Outcome:
        with self._span(item) as span:
            if item.event_id is None:
                span.set_status(Status(StatusCode.ERROR, "invalid event"))
                return ("dead_lettered", item.invalid, "InvalidEventError")
            if index in guards:
                return await self._guarded(conn, item, span)
            if item.event_id not in fresh:
                span.set_attribute("amc.duplicate", True)
                return ("duplicate", "", "")
            try:
                await item.route.handle(conn, item.record.topic, item.event)
            except self._retryable:
                raise
            except Exception as exc:
                # Logged when it fails again in its savepoint, in the next pass.
                log.debug("handler failed outside a savepoint; applying the batch again")
                raise HandlerFailed(index) from exc
            return ("processed", "", "")

    async def _run(
        self, conn: Connection, items: Sequence[Item], run: range, fresh: set[UUID]
    ) -> list[Outcome]:
        """Hand a run of one batch route's records to its handler in one call."""
        first = items[run.start]
        assert first.batch is not None
        spans = [self._start_span(items[index]) for index in run]
        events: list[Any] = []
        handled: list[Span] = []
        outcomes: list[Outcome] = []
        for index, span in zip(run, spans, strict=True):
            if items[index].event_id in fresh:
                events.append(items[index].event)
                handled.append(span)
                outcomes.append(("processed", "", ""))
            else:
                span.set_attribute("amc.duplicate", True)
                outcomes.append(("duplicate", "", ""))
        try:
            if events:
                await first.batch.handle_many(conn, first.record.topic, events, handled)
        except BaseException as exc:
            for span in handled:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            if isinstance(exc, self._retryable) or not isinstance(exc, Exception):
                raise
            log.debug("batch handler failed; applying each of its records alone")
            raise RunFailed(run) from exc
        finally:
            for span in spans:
                span.end()
        return outcomes

    async def _record(self, conn: Connection, items: Sequence[Item]) -> set[UUID]:
        """Record the event ids of `items` as handled; returns those not recorded before."""
        if not items:
            return set()
        rows = await conn.fetch(
            """INSERT INTO processed_events (event_id, topic)
               SELECT * FROM unnest($1::uuid[], $2::text[])
               ON CONFLICT DO NOTHING RETURNING event_id""",
            [item.event_id for item in items],
            [item.record.topic for item in items],
        )
        return {row["event_id"] for row in rows}

    async def _guarded(self, conn: Connection, item: Item, span: Span) -> Outcome:
        topic: str = item.record.topic
        try:
            async with conn.transaction():  # a savepoint: this event spoils nothing else
                first = await conn.fetchval(
                    """INSERT INTO processed_events (event_id, topic) VALUES ($1, $2)
                       ON CONFLICT DO NOTHING RETURNING true""",
                    item.event_id,
                    topic,
                )
                if not first:
                    span.set_attribute("amc.duplicate", True)
                    return ("duplicate", "", "")
                await item.route.handle(conn, topic, item.event)
        except self._retryable:
            raise
        except Exception as exc:  # a handler bug must not block the partition forever
            log.exception("handler for %s failed permanently", topic, extra={"topic": topic})
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            return ("dead_lettered", f"{type(exc).__name__}: {exc}", type(exc).__name__)
        return ("processed", "", "")

    def _span(self, item: Item) -> AbstractContextManager[Span]:
        """The record's span, continuing the trace from its headers, made current."""
        if not self._traced:
            return trace.use_span(_passing_on(item), end_on_exit=False)
        return self._tracer.start_as_current_span(**self._span_args(item))

    def _start_span(self, item: Item) -> Span:
        """The record's span, not made current: a run's records are handled together."""
        if not self._traced:
            return _passing_on(item)
        return self._tracer.start_span(**self._span_args(item))

    def _span_args(self, item: Item) -> dict[str, Any]:
        """The record's span continues the trace from its headers."""
        record = item.record
        topic: str = record.topic
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": self._group_id,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.kafka.message.key": (record.key or b"").decode(errors="replace"),
        }
        if item.event_id is not None:
            attributes["messaging.message.id"] = str(item.event_id)
        if isinstance(item.event, Event):
            attributes.update(event_span_attributes(item.event))
        return {
            "name": f"{topic} process",
            "context": propagate.extract(_headers(item)),
            "kind": SpanKind.CONSUMER,
            "attributes": attributes,
        }


def _headers(item: Item) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in item.record.headers}


def _passing_on(item: Item) -> Span:
    """Without tracing, a record's span only passes its trace context on (to what its handler
    emits): the no-op span the API's tracer would build from the headers, without the
    tracer's work and the attributes it would drop."""
    context = propagate.extract(_headers(item))
    return trace.NonRecordingSpan(trace.get_current_span(context).get_span_context())


def _joins_run(item: Item, first: Item) -> bool:
    """A decoded record of the same route continues a run; anything else ends it."""
    return item.route is first.route and item.event_id is not None
