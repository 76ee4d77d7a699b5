"""Event subscribers: outcomes of the collector's own executions. A fetched batch's run of
submissions, or of completions, is handled in one call: its weeks are locked and recorded
together, and each collection dispatches once for all of its completions (the lockstep waves
of a collection complete together; bench/collector/NOTES.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar
from uuid import UUID

from opentelemetry.trace import Span, SpanContext

from services.collector.engine import Engine
from services.collector.logic import parse_week_id
from shared.consumer import BatchTx, PermanentError
from shared.contract import ExecutionCompleted, ExecutionSubmitted, Origin, OriginKind
from shared.runtime import ServiceRuntime

E = TypeVar("E", ExecutionSubmitted, ExecutionCompleted)


def _week(origin: Origin) -> UUID:
    week_id = parse_week_id(origin.id)
    if week_id is None:
        raise PermanentError(f"collection origin id {origin.id!r} is not a week id (UUID)")
    return week_id


def in_parts(
    events: Sequence[E], spans: Sequence[Span]
) -> Iterator[tuple[list[tuple[UUID, E]], list[SpanContext]]]:
    """The collections' events (others are not ours) with their weeks and spans, in parts in
    which no week and no execution comes twice: the second of two events of one week is
    handled after the first is recorded, as if it came alone."""
    part: list[tuple[UUID, E]] = []
    causes: list[SpanContext] = []
    seen: set[UUID] = set()
    paired = len(spans) == len(events)
    for index, event in enumerate(events):
        if event.origin.kind is not OriginKind.COLLECTION:
            continue  # a schedule's or an external run
        week_id = _week(event.origin)
        if week_id in seen or event.execution_id in seen:
            yield part, causes
            part, causes, seen = [], [], set()
        part.append((week_id, event))
        if paired:
            causes.append(spans[index].get_span_context())
        seen.update((week_id, event.execution_id))
    if part:
        yield part, causes


def register(runtime: ServiceRuntime, engine: Engine) -> None:
    @runtime.consumer.on_batch(ExecutionSubmitted)
    async def on_submitted(tx: BatchTx, events: Sequence[ExecutionSubmitted]) -> None:
        for part, _ in in_parts(events, tx.spans):
            await engine.on_submitted_many(tx.conn, part)

    @runtime.consumer.on_batch(ExecutionCompleted)
    async def on_completed(tx: BatchTx, events: Sequence[ExecutionCompleted]) -> None:
        for part, causes in in_parts(events, tx.spans):
            await engine.on_completed_many(tx.conn, part, causes)
