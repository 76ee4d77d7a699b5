"""A trace started where an event is enqueued continues where it is consumed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.config import ServiceSettings
from shared.runtime import ServiceRuntime
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.probe import probe_runtime, request
from tests.support.settings import service_settings


@pytest.fixture(params=[False, True], ids=["per event", "batch handler"])
async def probe(
    request: pytest.FixtureRequest,
    spans: InMemorySpanExporter,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
) -> AsyncIterator[ServiceRuntime]:
    settings = service_settings(
        ServiceSettings,
        service="probe",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
    )
    runtime = probe_runtime(settings, batch_handler=request.param)
    await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def test_consumer_span_continues_the_enqueuing_trace(
    probe: ServiceRuntime, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("cause") as cause:
        async with probe.pool.acquire() as conn, conn.transaction():
            await probe.outbox.enqueue(conn, request("traced"))
    trace_id = format(cause.get_span_context().trace_id, "032x")

    for _ in range(150):
        seen = await probe.pool.fetchval("SELECT trace_id FROM seen WHERE request_id = 'traced'")
        if seen:
            break
        await asyncio.sleep(0.1)
    assert seen == trace_id

    finished = [
        s
        for s in spans.get_finished_spans()
        if s.context.trace_id == cause.get_span_context().trace_id
    ]
    by_id = {s.context.span_id: s for s in finished}
    topic = probe.topics.name("execution.requested")
    process = next(s for s in finished if s.name == f"{topic} process")
    chain = []
    span = process
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    assert chain[-1].name == "cause"
    producers = [s for s in chain if s.kind is SpanKind.PRODUCER]
    assert [(s.attributes or {}).get("messaging.destination.name") for s in producers] == [topic]
    published = probe.registry.get_sample_value(
        "amc_events_published_total", {"topic": topic, "outcome": "acknowledged"}
    )
    assert published == 1
