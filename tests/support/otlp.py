"""An OTLP/HTTP trace receiver for end-to-end tests: services export to it like to Jaeger."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: int
    attributes: dict[str, str]
    start_ns: int
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each linked span


@dataclass
class TraceStore:
    spans: list[ReceivedSpan] = field(default_factory=list)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return sorted((s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ns)

    def with_attribute(self, key: str, value: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.attributes.get(key) == value]

    def children(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        return [s for s in self.trace(span.trace_id) if s.parent_id == span.span_id]

    def ancestry(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        """The span's parents up to the root, nearest first (stops at a missing parent)."""
        by_id = {s.span_id: s for s in self.trace(span.trace_id)}
        chain = []
        current = span
        while current.parent_id and current.parent_id in by_id:
            current = by_id[current.parent_id]
            chain.append(current)
        return chain


def _value(any_value: object) -> str:
    for kind in ("string_value", "int_value", "bool_value", "double_value"):
        if any_value.HasField(kind):  # type: ignore[attr-defined]
            return str(getattr(any_value, kind))
    return ""


def receiver(store: TraceStore) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    store.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            start_ns=span.start_time_unix_nano,
                            links=tuple(
                                (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                            ),
                        )
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    return app
