"""The relay's producer: where records go, what goes into their headers, what is counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from shared.config import KafkaSettings
from shared.outbox import OutboxRow
from shared.publisher import KafkaRecordPublisher

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
PARTITIONS = 4


class FakeBuilder:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

    def append(
        self, *, key: bytes, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]
    ) -> object | None:
        if len(self.records) == self.capacity:
            return None
        self.records.append((key, value, headers))
        return object()


class FakeProducer:
    """aiokafka's batch API as the publisher uses it; every batch's ack is left to the test."""

    def __init__(self, batch_capacity: int = 100) -> None:
        self.batch_capacity = batch_capacity
        self.batches: list[tuple[str, int, FakeBuilder, asyncio.Future[Any]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.batch_capacity)

    async def send_batch(
        self, batch: FakeBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batches.append((topic, partition, batch, ack))
        return ack

    def records(self) -> Iterator[tuple[int, bytes, bytes, dict[str, bytes]]]:
        for _, partition, batch, _ in self.batches:
            for key, value, headers in batch.records:
                yield partition, key, value, dict(headers)


def rows(n: int, keys: int = 5, headers: dict[str, str] | None = None) -> list[OutboxRow]:
    return [
        OutboxRow(i, "t", f"key-{i % keys}".encode(), f'{{"seq": {i}}}'.encode(), headers or {})
        for i in range(n)
    ]


def publisher_on(
    monkeypatch: pytest.MonkeyPatch, producer: FakeProducer
) -> tuple[KafkaRecordPublisher, CollectorRegistry]:
    registry = CollectorRegistry()
    publisher = KafkaRecordPublisher(KafkaSettings(), client_id="test", registry=registry)
    monkeypatch.setattr(publisher, "_producer", producer)
    return publisher, registry


async def out(producer: FakeProducer) -> None:
    """Until the publisher has handed its batches over (the fake never makes it wait)."""
    await asyncio.sleep(0)
    assert producer.batches


def count(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value(
        "amc_events_published_total", {"topic": "t", "outcome": outcome}
    )


async def test_records_go_where_send_would_put_them_in_order_and_return_once_all_are_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer(batch_capacity=7)
    publisher, registry = publisher_on(monkeypatch, producer)
    given = rows(60)
    publishing = asyncio.create_task(publisher(given))
    await out(producer)
    assert not publishing.done()
    for *_, ack in producer.batches:
        ack.set_result(None)
    await publishing

    sent = list(producer.records())
    assert sorted(value for _, _, value, _ in sent) == sorted(row.payload for row in given)
    partitioner = DefaultPartitioner()
    for partition, key, _, _ in sent:
        assert partition == partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
    by_key: dict[bytes, list[bytes]] = {}
    for _, key, value, _ in sent:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        assert values == [row.payload for row in given if row.key == key], key
    assert all(len(batch.records) <= 7 for _, _, batch, _ in producer.batches)
    assert count(registry, "acknowledged") == 60


async def test_one_refused_batch_fails_the_publish_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer(batch_capacity=10)
    publisher, registry = publisher_on(monkeypatch, producer)
    publishing = asyncio.create_task(publisher(rows(20, keys=1)))  # one key: one partition
    await out(producer)
    producer.batches[0][3].set_result(None)
    producer.batches[1][3].set_exception(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        await publishing
    assert count(registry, "acknowledged") == 10
    assert count(registry, "failed") == 10


async def test_without_tracing_the_stored_context_goes_out_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.publisher.tracing_installed", lambda: False)
    producer = FakeProducer()
    publisher, _ = publisher_on(monkeypatch, producer)
    publishing = asyncio.create_task(publisher(rows(3, headers={"traceparent": TRACEPARENT})))
    await out(producer)
    for *_, ack in producer.batches:
        ack.set_result(None)
    await publishing
    for _, _, _, headers in producer.records():
        assert headers == {"content-type": b"application/json", "traceparent": TRACEPARENT.encode()}


async def test_with_tracing_each_record_gets_a_span_in_its_stored_trace_ended_on_its_ack(
    monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    trace_id = uuid4().hex  # the exporter is shared: this test's spans are this trace's
    producer = FakeProducer()
    publisher, _ = publisher_on(monkeypatch, producer)
    stored = {"traceparent": f"00-{trace_id}-{PARENT_ID}-01"}
    publishing = asyncio.create_task(publisher(rows(3, headers=stored)))
    await out(producer)

    def sent() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.name == "send t" and format(s.context.trace_id, "032x") == trace_id
        ]

    assert not sent()
    for *_, ack in producer.batches:
        ack.set_result(None)
    await publishing

    assert len(sent()) == 3
    for span in sent():
        assert span.parent is not None
        assert format(span.parent.span_id, "016x") == PARENT_ID
    carried = {headers["traceparent"].decode() for _, _, _, headers in producer.records()}
    assert carried == {f"00-{trace_id}-{format(s.context.span_id, '016x')}-01" for s in sent()}
