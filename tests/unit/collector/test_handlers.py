"""How a batch handler splits its events: the collections' only, no week or execution twice
in one part."""

from __future__ import annotations

import uuid

from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.collector.handlers import in_parts
from shared.contract import ExecutionSubmitted, Origin, OriginKind


def submitted(week_id: uuid.UUID, kind: OriginKind = OriginKind.COLLECTION) -> ExecutionSubmitted:
    return ExecutionSubmitted(
        execution_id=uuid.uuid4(),
        amc_execution_id="amc-1",
        instance_id="amc-inst-1",
        user_id="user-1",
        origin=Origin(kind=kind, id=str(week_id)),
    )


def span(n: int) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(n, n, is_remote=False, trace_flags=TraceFlags(1)))


def test_a_repeated_week_starts_a_new_part_and_others_origins_are_left_out() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [submitted(a), submitted(b), submitted(a, OriginKind.SCHEDULE), submitted(a)]
    spans = [span(n) for n in range(1, 5)]
    parts = list(in_parts(events, spans))
    assert [[week for week, _ in part] for part, _ in parts] == [[a, b], [a]]
    assert [[event for _, event in part] for part, _ in parts] == [events[:2], events[3:]]
    assert [[c.span_id for c in causes] for _, causes in parts] == [[1, 2], [4]]


def test_a_repeated_execution_starts_a_new_part() -> None:
    first = submitted(uuid.uuid4())
    elsewhere = Origin(kind=OriginKind.COLLECTION, id=str(uuid.uuid4()))
    again = first.model_copy(update={"origin": elsewhere})
    assert len(list(in_parts([first, again], []))) == 2
