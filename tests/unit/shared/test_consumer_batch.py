"""Which records of a batch get a savepoint after handler failures, and how a batch route's
runs of records are handed to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import NAMESPACE_DNS, UUID, uuid5

import pytest
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from shared.consumer_batch import BatchApplier, Guards


def test_no_record_is_guarded_before_a_failure() -> None:
    guards = Guards(10)
    assert [i for i in range(10) if i in guards] == []


def test_the_first_failure_guards_that_record_alone() -> None:
    guards = Guards(10)
    guards.failed(4)
    assert [i for i in range(10) if i in guards] == [4]


def test_a_second_failure_guards_every_record_from_it_on() -> None:
    guards = Guards(10)
    guards.failed(4)
    guards.failed(7)
    assert [i for i in range(10) if i in guards] == [4, 7, 8, 9]
    # A record before that fails too (a handler that fails only sometimes) moves the start
    # back, so each pass guards more and the passes end.
    guards.failed(2)
    assert [i for i in range(10) if i in guards] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_records_guarded_in_advance_do_not_count_as_failures() -> None:
    guards = Guards(10, indexes={1})
    guards.failed(5)
    assert [i for i in range(10) if i in guards] == [1, 5]


class FakeConn:
    """Enough of a connection for BatchApplier: processed_events as a set, and transactions
    (savepoints included) that put back what they changed when they fail."""

    def __init__(self, processed: set[UUID], handled: list[str]) -> None:
        self.processed = processed
        self.handled = handled

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        processed, handled = set(self.processed), list(self.handled)
        try:
            yield
        except BaseException:
            self.processed.clear()
            self.processed.update(processed)
            self.handled[:] = handled
            raise

    async def fetch(self, sql: str, ids: list[UUID], topics: list[str]) -> list[dict[str, UUID]]:
        fresh = [i for i in ids if i not in self.processed]
        self.processed.update(fresh)
        return [{"event_id": i} for i in fresh]

    async def fetchval(self, sql: str, event_id: UUID, topic: str) -> bool | None:
        if event_id in self.processed:
            return None
        self.processed.add(event_id)
        return True


class FakePool:
    def __init__(self) -> None:
        self.processed: set[UUID] = set()
        self.handled: list[str] = []
        self.calls: list[list[str]] = []

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConn]:
        yield FakeConn(self.processed, self.handled)


@dataclass
class Record:
    topic: str
    value: bytes
    offset: int
    partition: int = 0
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def ids(names: Sequence[str]) -> dict[str, UUID]:
    return {name: uuid5(NAMESPACE_DNS, name) for name in names}


@dataclass
class OneAtATime:
    """A route whose handler takes one event: `bad` refuses."""

    pool: FakePool

    def decode(self, raw: bytes) -> tuple[UUID, Any]:
        return uuid5(NAMESPACE_DNS, raw.decode()), raw.decode()

    async def handle(self, conn: Any, topic: str, event: Any) -> None:
        if event == "bad":
            raise ValueError("refused")
        conn.handled.append(event)
        self.pool.calls.append([event])


@dataclass
class Together(OneAtATime):
    """A batch route: a call that holds `bad` fails whole."""

    async def handle(self, conn: Any, topic: str, event: Any) -> None:
        await self.handle_many(conn, topic, [event], [INVALID_SPAN])

    async def handle_many(
        self, conn: Any, topic: str, events: Sequence[Any], spans: Sequence[Span]
    ) -> None:
        assert len(spans) == len(events)
        if "bad" in events:
            raise ValueError("refused")
        conn.handled.extend(events)
        self.pool.calls.append(list(events))


def applier(pool: FakePool) -> BatchApplier:
    return BatchApplier(
        routes={"many": Together(pool), "one": OneAtATime(pool)},
        group_id="test",
        retryable=(OSError,),
    )


async def apply(pool: FakePool, records: Sequence[tuple[str, str]]) -> list[str]:
    batch = applier(pool)
    items = batch.decode([Record(t, v.encode(), i) for i, (t, v) in enumerate(records)])
    outcomes = await batch.apply(cast(Any, pool), items)
    return [outcome for outcome, _, _ in outcomes]


async def test_a_batch_route_takes_each_run_of_its_records_in_one_call() -> None:
    pool = FakePool()
    records = [("many", "a"), ("many", "b"), ("one", "c"), ("many", "d"), ("many", "e")]
    assert await apply(pool, records) == ["processed"] * 5
    assert pool.calls == [["a", "b"], ["c"], ["d", "e"]]
    assert pool.handled == ["a", "b", "c", "d", "e"]


async def test_a_failing_run_is_applied_again_one_record_at_a_time() -> None:
    pool = FakePool()
    records = [("many", "a"), ("many", "bad"), ("many", "c"), ("one", "d")]
    assert await apply(pool, records) == ["processed", "dead_lettered", "processed", "processed"]
    # The failed call was rolled back; each record of its run then went alone.
    assert pool.calls == [["a"], ["c"], ["d"]]
    assert pool.handled == ["a", "c", "d"]
    assert pool.processed == set(ids(["a", "c", "d"]).values())


async def test_records_handled_before_are_left_out_of_the_call() -> None:
    pool = FakePool()
    pool.processed.update(ids(["b"]).values())
    records = [("many", "a"), ("many", "b"), ("many", "c")]
    assert await apply(pool, records) == ["processed", "duplicate", "processed"]
    assert pool.calls == [["a", "c"]]


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@dataclass
class OneCarrying(OneAtATime):
    """Records the trace id each event was handled under."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    async def handle(self, conn: Any, topic: str, event: Any) -> None:
        self.seen.append(("one", _trace_id(trace.get_current_span())))


@dataclass
class ManyCarrying(Together):
    seen: list[tuple[str, str]] = field(default_factory=list)

    async def handle_many(
        self, conn: Any, topic: str, events: Sequence[Any], spans: Sequence[Span]
    ) -> None:
        self.seen += [("many", _trace_id(span)) for span in spans]


def _trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("traced", [False, True], ids=["no tracing", "tracing"])
async def test_each_record_is_handled_in_the_trace_its_headers_carry(
    monkeypatch: pytest.MonkeyPatch, traced: bool
) -> None:
    """Without tracing too: what a handler emits must carry its record's trace on."""
    monkeypatch.setattr("shared.consumer_batch.tracing_installed", lambda: traced)
    pool = FakePool()
    seen: list[tuple[str, str]] = []
    routes = {"many": ManyCarrying(pool, seen), "one": OneCarrying(pool, seen)}
    batch = BatchApplier(routes=dict(routes), group_id="test", retryable=())
    headers = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode()),)
    records = [Record(t, f"{t}-{i}".encode(), i, headers=headers) for i, t in enumerate(routes)]
    outcomes = await batch.apply(cast(Any, pool), batch.decode(records))
    assert [outcome for outcome, _, _ in outcomes] == ["processed", "processed"]
    assert seen == [("many", TRACE_ID), ("one", TRACE_ID)]
