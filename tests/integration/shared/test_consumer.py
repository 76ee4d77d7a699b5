"""Idempotent consumption and dead-lettering over the real broker and database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.config import ServiceSettings
from shared.contract import ExecutionRequested
from shared.runtime import ServiceRuntime
from shared.telemetry import trace_carrier
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.probe import probe_runtime, request
from tests.support.kafka import TopicReader, produce
from tests.support.settings import service_settings


@pytest.fixture
async def probe(uid: str, database_url: str, kafka_bootstrap: str) -> AsyncIterator[ServiceRuntime]:
    settings = service_settings(
        ServiceSettings,
        service="probe",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
    )
    runtime = probe_runtime(settings)
    await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
    await runtime.start()
    yield runtime
    await runtime.stop()


def consumed(runtime: ServiceRuntime, outcome: str) -> float:
    topic = runtime.topics.name(ExecutionRequested.topic)
    value = runtime.registry.get_sample_value(
        "amc_events_consumed_total", {"topic": topic, "outcome": outcome}
    )
    return value or 0.0


async def wait_until(condition: object, timeout_s: float = 30.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_redelivered_event_changes_nothing(
    probe: ServiceRuntime, kafka_bootstrap: str
) -> None:
    event = request("req-dup")
    topic = probe.topics.name(ExecutionRequested.topic)
    await produce(kafka_bootstrap, topic, [event.to_bytes()] * 3, key=event.key())

    async def all_three_seen() -> bool:
        return consumed(probe, "processed") + consumed(probe, "duplicate") >= 3

    await wait_until(all_three_seen)
    assert consumed(probe, "processed") == 1
    assert consumed(probe, "duplicate") == 2
    rows = await probe.pool.fetch("SELECT request_id FROM seen")
    assert [r["request_id"] for r in rows] == ["req-dup"]


async def test_bad_messages_are_dead_lettered_and_consumption_goes_on(
    probe: ServiceRuntime, kafka_bootstrap: str
) -> None:
    topic = probe.topics.name(ExecutionRequested.topic)
    newer = json.loads(request("req-v2").to_bytes()) | {"schema_version": 2}
    missing_run = json.loads(request("req-norun").to_bytes())
    del missing_run["run"]
    refused = request("req-refused").model_copy(
        update={"run": request("x").run.model_copy(update={"workflow_id": "reject-me"})}
    )
    await produce(
        kafka_bootstrap,
        topic,
        [
            b"{not json",
            json.dumps(newer).encode(),
            json.dumps(missing_run).encode(),
            refused.to_bytes(),
            request("req-good").to_bytes(),
        ],
        key=b"same-partition",
        headers={"x-origin": "test"},
    )

    async def good_seen() -> bool:
        return bool(await probe.pool.fetchval("SELECT count(*) FROM seen"))

    await wait_until(good_seen)
    assert await probe.pool.fetchval("SELECT request_id FROM seen") == "req-good"

    async with TopicReader(kafka_bootstrap, f"{topic}.dlq") as dlq:
        letters = [r.json() for r in await dlq.wait_count(4)]
    reasons = [letter["reason"] for letter in letters]
    assert "payload is not valid JSON" in reasons[0]
    assert "unsupported schema_version 2" in reasons[1]
    assert "run: Field required" in reasons[2]
    assert "refused by the probe" in reasons[3]
    assert all(letter["source_topic"] == topic for letter in letters)
    assert all(letter["headers"].get("x-origin") == "test" for letter in letters)
    assert letters[0]["payload"] == "{not json"
    assert [letter["offset"] for letter in letters] == sorted(
        letter["offset"] for letter in letters
    )


async def test_consumer_lag_is_exported_per_partition(
    probe: ServiceRuntime, kafka_bootstrap: str
) -> None:
    topic = probe.topics.name(ExecutionRequested.topic)
    await produce(kafka_bootstrap, topic, [request("req-lag").to_bytes()], key=b"k")

    async def caught_up() -> bool:
        return consumed(probe, "processed") >= 1

    await wait_until(caught_up)
    lags = [
        probe.registry.get_sample_value("amc_consumer_lag", {"topic": topic, "partition": str(p)})
        for p in range(3)
    ]
    present = [v for v in lags if v is not None]
    assert present, "lag is exported for the partitions this replica owns"
    assert all(v == 0.0 for v in present), "caught up: nothing left behind"


async def test_a_dead_letter_stays_in_the_senders_trace(
    probe: ServiceRuntime, kafka_bootstrap: str, spans: InMemorySpanExporter
) -> None:
    topic = probe.topics.name(ExecutionRequested.topic)
    with trace.get_tracer("test").start_as_current_span("sender") as sender:
        carrier = trace_carrier()
    await produce(kafka_bootstrap, topic, [b"{not json"], key=b"traced", headers=carrier)

    async with TopicReader(kafka_bootstrap, f"{topic}.dlq") as dlq:
        (letter,) = await dlq.wait_count(1)
    # A DLQ reader (or Jaeger) finds the sender's trace on the letter.
    trace_id = letter.headers["traceparent"].split("-")[1]
    assert trace_id == format(sender.get_span_context().trace_id, "032x")
    assert letter.headers["x-dlq-reason"].startswith("payload is not valid JSON")
    (sent,) = [s for s in spans.get_finished_spans() if s.name == f"send {topic}.dlq"]
    assert sent.context.trace_id == sender.get_span_context().trace_id
