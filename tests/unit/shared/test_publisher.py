"""The relay's producer: what goes into a record's headers, and what is counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.config import KafkaSettings
from shared.publisher import KafkaRecordPublisher

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, headers))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


@pytest.mark.parametrize("traced", [False, True], ids=["no tracing", "tracing"])
async def test_a_record_carries_its_trace_context_and_is_counted_once_acknowledged(
    monkeypatch: pytest.MonkeyPatch, traced: bool
) -> None:
    monkeypatch.setattr("shared.publisher.tracing_installed", lambda: traced)
    registry = CollectorRegistry()
    publisher = KafkaRecordPublisher(KafkaSettings(), client_id="test", registry=registry)
    producer = FakeProducer()
    monkeypatch.setattr(publisher, "_producer", producer)

    sent = [await publisher("t", b"k", b"{}", {"traceparent": TRACEPARENT}) for _ in range(3)]
    producer.acks[0].set_result(None)
    producer.acks[1].set_result(None)
    producer.acks[2].set_exception(ConnectionError("gone"))
    await asyncio.wait(sent)

    for _, key, value, headers in producer.sent:
        assert (key, value) == (b"k", b"{}")
        assert dict(headers)["content-type"] == b"application/json"
        if not traced:
            assert dict(headers)["traceparent"] == TRACEPARENT.encode()

    def count(outcome: str) -> float | None:
        return registry.get_sample_value(
            "amc_events_published_total", {"topic": "t", "outcome": outcome}
        )

    assert count("acknowledged") == 2
    assert count("failed") == 1
