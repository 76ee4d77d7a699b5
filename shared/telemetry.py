"""Tracing set-up from the standard OTEL_* variables, and JSON logs that carry trace ids.

OTEL_TRACES_EXPORTER: `otlp` (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, e.g. Jaeger's :4318),
`console`, or `none` (default when no endpoint is configured). OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES are honoured by the SDK's Resource.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TraceState
from opentelemetry.util.types import AttributeValue

_provider: TracerProvider | None = None


def _exporter_from_env() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER")
    if choice is None:
        has_endpoint = any(
            os.environ.get(v)
            for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        choice = "otlp" if has_endpoint else "none"
    choice = choice.strip().lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r} is not supported (otlp, console, none)")


class NoOrphanCalls(Sampler):
    """Drops CLIENT spans that would start a trace; everything else goes to `delegate`.

    Background loops query the database (and nothing else) between units of work: claiming
    due rows, LISTEN, gauges. Traced as roots, each poll would be a one-span trace and bury
    the runs in Jaeger. Every unit of work worth a trace opens its own span first (a consume,
    an API call, a job on a row, a firing), so a call with no span around it is never one.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanCalls{{{self._delegate.get_description()}}}"


def setup_tracing(service_name: str, *, processor: SpanProcessor | None = None) -> TracerProvider:
    """Install the global TracerProvider once per process and instrument asyncpg and httpx.

    With no exporter configured and no processor given, nothing would ever receive a span:
    the provider returned is then not installed, and the API's no-op tracer stays, which
    passes the trace context it is handed on (stored carriers, event headers, log lines)
    without building, timing and dropping a span for every job, query and request."""
    global _provider
    if _provider is not None:
        if processor is not None:
            _provider.add_span_processor(processor)
        return _provider
    attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    # The SDK reads OTEL_TRACES_SAMPLER(_ARG) when given no sampler: keep that choice.
    configured = TracerProvider().sampler
    provider = TracerProvider(resource=Resource.create(attrs), sampler=NoOrphanCalls(configured))
    exporter = _exporter_from_env()
    if exporter is None and processor is None:
        return provider
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider,
        request_hook=_record_safe_url,
        async_request_hook=_record_safe_url_async,
    )
    _provider = provider
    return provider


def url_for_span(url: str) -> str:
    """A URL as a span may record it: no credentials, no query. A pre-signed storage URL's
    query is its signature (`X-Amz-Signature`, which the instrumentation's own redaction
    does not know); an API's query may carry paging tokens. Scheme, host and path remain."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _record_safe_url(span: Span, request: Any) -> None:
    """httpx request hook: replace the URL the CLIENT span recorded with `url_for_span`."""
    attributes = getattr(span, "attributes", None) or {}
    for key in ("url.full", "http.url"):
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, url_for_span(value))


async def _record_safe_url_async(span: Span, request: Any) -> None:
    _record_safe_url(span, request)


# Ids operators search traces by; each becomes an `amc.<name>` span attribute when present.
SEARCHABLE_IDS = (
    "schedule_id",
    "run_id",
    "collection_id",
    "week_id",
    "execution_id",
    "amc_execution_id",
    "request_id",
    "user_id",
    "instance_id",
)


def event_span_attributes(event: Any) -> dict[str, str]:
    """The searchable ids an event carries (its run's user and instance included)."""
    attributes: dict[str, str] = {}
    for source in (event, getattr(event, "run", None)):
        # A model keeps its fields in __dict__: looking there costs far less than getattr,
        # which on a pydantic model goes through __getattr__ for every absent name (measured:
        # most of the consumer's span cost per event).
        fields = getattr(source, "__dict__", {})
        for name in SEARCHABLE_IDS:
            value = fields.get(name)
            if value is not None:
                attributes[f"amc.{name}"] = str(value)
    origin = getattr(event, "origin", None)
    if origin is not None:
        attributes["amc.origin.kind"] = str(origin.kind)
        attributes["amc.origin.id"] = str(origin.id)
        # Also under the id's own name, so searching one run's id finds every event of it.
        id_name = _ORIGIN_ID_NAMES.get(str(origin.kind))
        if id_name is not None:
            attributes.setdefault(f"amc.{id_name}", str(origin.id))
    return attributes


_ORIGIN_ID_NAMES = {"schedule": "run_id", "collection": "week_id", "external": "request_id"}


def trace_carrier(span: Span | None = None) -> dict[str, str]:
    """The W3C trace context of `span` (default: the current span), to store beside a row.

    Work that a background loop does later for that row continues the trace with
    `continue_trace`, so one run stays one trace however long it waits between steps.
    """
    carrier: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(carrier, context=context)
    return carrier


def link_to(carrier: Mapping[str, str] | None) -> list[Link]:
    """A span link to the trace a stored carrier names (none if it names no trace)."""
    context = trace.get_current_span(propagate.extract(dict(carrier or {}))).get_span_context()
    return [Link(context)] if context.is_valid else []


@contextmanager
def continue_trace(
    tracer: Tracer,
    name: str,
    carrier: Mapping[str, str] | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span]:
    """A span that is a child of the stored `carrier`'s span (a new trace without one).

    The current context is replaced, not extended: a background loop's own span (if any)
    must not become the parent of work done on behalf of a run.
    """
    parent = propagate.extract(dict(carrier or {}), context=otel_context.Context())
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes, links=links
    ) as span:
        yield span


def end_together(spans: Sequence[Span], error: BaseException | None = None) -> None:
    """End spans that covered one transaction at one instant; ERROR (with the exception) if
    it failed. For work that handles many runs at once, each with its own root span."""
    end_time = time.time_ns()
    for span in spans:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.record_exception(error)
        span.end(end_time=end_time)


def tracing_installed() -> bool:
    """Whether spans go anywhere. Without a provider the API's tracer only passes the trace
    context on, which per-record work can do itself, without building a span for each."""
    return not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the active trace and span ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key in ("service", "topic", "event_id", "execution_id", "user_id"):
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "INFO", *, json_logs: bool | None = None) -> None:
    """JSON logs by default (LOG_FORMAT=text for people reading a terminal)."""
    if json_logs is None:
        json_logs = os.environ.get("LOG_FORMAT", "json").lower() != "text"
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party loggers that would otherwise echo request details at INFO.
    for noisy in ("aiokafka", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
