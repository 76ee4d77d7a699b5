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

Transient errors are not caught here: the caller retries the whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.contract import Event, InvalidEventError
from shared.outbox import Connection
from shared.telemetry import event_span_attributes

log = logging.getLogger(__name__)

Outcome = tuple[str, str, str]  # (processed|duplicate|dead_lettered, reason, error type)


class Route(Protocol):
    """How one topic's records are decoded and handled."""

    def decode(self, raw: bytes) -> tuple[UUID, Any]: ...

    async def handle(self, conn: Connection, topic: str, event: Any) -> None: ...


@dataclass(frozen=True)
class Item:
    """A record with its decoding, which does not change between passes."""

    record: Any
    route: Route
    event_id: UUID | None = None
    event: Any = None
    invalid: str = ""  # why the record could not be decoded


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

    def decode(self, records: Sequence[Any]) -> list[Item]:
        items = []
        for record in records:
            route = self._routes[record.topic]
            try:
                event_id, event = route.decode(record.value or b"")
            except InvalidEventError as exc:
                items.append(Item(record, route, invalid=str(exc)))
            else:
                items.append(Item(record, route, event_id, event))
        return items

    async def apply(self, pool: asyncpg.Pool[Any], items: Sequence[Item]) -> list[Outcome]:
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

    async def _pass(self, conn: Connection, items: Sequence[Item], guards: Guards) -> list[Outcome]:
        plain = [
            item
            for index, item in enumerate(items)
            if item.event_id is not None and index not in guards
        ]
        fresh = await self._record(conn, plain)
        outcomes: list[Outcome] = []
        for index, item in enumerate(items):
            with self._span(item) as span:
                if item.event_id is None:
                    span.set_status(Status(StatusCode.ERROR, "invalid event"))
                    outcomes.append(("dead_lettered", item.invalid, "InvalidEventError"))
                elif index in guards:
                    outcomes.append(await self._guarded(conn, item, span))
                elif item.event_id not in fresh:
                    span.set_attribute("amc.duplicate", True)
                    outcomes.append(("duplicate", "", ""))
                else:
                    try:
                        await item.route.handle(conn, item.record.topic, item.event)
                    except self._retryable:
                        raise
                    except Exception as exc:
                        # Logged when it fails again in its savepoint, in the next pass.
                        log.debug("handler failed outside a savepoint; applying the batch again")
                        raise HandlerFailed(index) from exc
                    outcomes.append(("processed", "", ""))
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
        record = item.record
        topic: str = record.topic
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
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
        return self._tracer.start_as_current_span(
            f"{topic} process",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
