"""Trace carriers stored beside rows, spans continued from them, and the root-call sampler."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Tracer

from shared.contract import TokenRefreshRequested, Topics
from shared.outbox import Outbox
from shared.telemetry import (
    NoOrphanCalls,
    continue_trace,
    link_to,
    trace_carrier,
    url_for_span,
)


def tracer_with(exporter: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider(sampler=NoOrphanCalls(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def test_a_stored_carrier_makes_later_work_a_child_of_its_span() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracer_with(exporter)
    with tracer.start_as_current_span("request") as request:
        carrier = trace_carrier()
    with (
        tracer.start_as_current_span("loop step"),
        continue_trace(tracer, "job", carrier, attributes={"amc.execution_id": "e1"}) as job,
    ):
        pass
    assert job.get_span_context().trace_id == request.get_span_context().trace_id
    (finished,) = [s for s in exporter.get_finished_spans() if s.name == "job"]
    assert finished.parent is not None
    # The request's span is the parent, not the loop step that happened to be current.
    assert finished.parent.span_id == request.get_span_context().span_id
    assert (finished.attributes or {})["amc.execution_id"] == "e1"


def test_without_a_carrier_the_work_starts_its_own_trace() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracer_with(exporter)
    with (
        tracer.start_as_current_span("loop step") as step,
        continue_trace(tracer, "job", {}) as job,
    ):
        pass
    assert job.get_span_context().trace_id != step.get_span_context().trace_id
    (finished,) = [s for s in exporter.get_finished_spans() if s.name == "job"]
    assert finished.parent is None


def test_trace_carrier_of_a_given_span_and_links_to_it() -> None:
    tracer = tracer_with(InMemorySpanExporter())
    span = tracer.start_span("fire")
    carrier = trace_carrier(span)
    assert carrier["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
    (link,) = link_to(carrier)
    assert link.context.span_id == span.get_span_context().span_id
    assert link_to({}) == []
    assert link_to(None) == []


def test_calls_outside_any_span_are_not_traced_but_calls_inside_are() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracer_with(exporter)
    with tracer.start_span("SELECT", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("job"),
        tracer.start_as_current_span("GET", kind=SpanKind.CLIENT),
    ):
        pass
    with tracer.start_span("POST /collections", kind=SpanKind.SERVER):
        pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == [
        "GET",
        "POST /collections",
        "job",
    ]


async def test_one_trace_context_per_event_or_none_at_all() -> None:
    outbox = Outbox("probe", Topics(""))
    events = [TokenRefreshRequested(user_id=user, reason="test") for user in ("a", "b")]
    with pytest.raises(ValueError, match="1 trace contexts given for 2 events"):
        # Refused before the database is touched (there is no connection here).
        await outbox.enqueue(None, *events, trace_contexts=[{}])  # type: ignore[arg-type]


def test_recorded_urls_keep_no_signature_credentials_or_query() -> None:
    url = "https://bucket.s3.amazonaws.com:8443/r/part-0.csv?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert url_for_span(url) == "https://bucket.s3.amazonaws.com:8443/r/part-0.csv"
    assert url_for_span("http://u:p@[::1]/f?sig=1") == "http://[::1]/f"
    assert url_for_span("https://api.example/v1/x") == "https://api.example/v1/x"
