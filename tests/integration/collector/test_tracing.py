"""Traces of weeks: every week.requested (first, retry, reconcile) is published under a root
"week dispatch" span of its own, linked to the trace that created the collection."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.contract import WeekRequested
from tests.integration.collector.fake_poller import FakePoller, Outcome
from tests.integration.collector.harness import Collector, running_collector, settings_for
from tests.support.spans import attr, wait_spans


async def create_traced(collector: Collector, **body: object) -> tuple[str, int]:
    """Create a collection under a span of the test's; its id and that trace's id."""
    with trace.get_tracer("test").start_as_current_span("operator") as operator:
        created = await collector.create(**body)
    return created["id"], operator.get_span_context().trace_id


def dispatches(collection_id: str) -> Callable[[ReadableSpan], bool]:
    return lambda s: s.name == "week dispatch" and attr(s, "amc.collection_id") == collection_id


async def sent_under(
    spans: InMemorySpanExporter, topic: str, dispatch: ReadableSpan
) -> ReadableSpan:
    [producer] = await wait_spans(
        spans,
        lambda s: (
            s.name == f"send {topic}"
            and s.parent is not None
            and s.parent.span_id == dispatch.context.span_id
        ),
        1,
    )
    return producer


async def test_each_week_request_is_its_own_trace_linked_to_the_collection(
    spans: InMemorySpanExporter, uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    # No poller: both weeks stay REQUESTED, and are re-requested (reconciled) after 0.5 s.
    settings = settings_for(uid, database_url, kafka_bootstrap, reconcile_after_s=0.5)
    async with running_collector(settings) as collector:
        collection_id, creation = await create_traced(
            collector,
            start_date="2024-01-01",
            end_date="2024-01-14",
            max_weeks_in_flight=2,
            user_id="trace-user",
            instance_id="amc-trace",
        )
        stored = await collector.runtime.pool.fetchval(
            "SELECT trace_context FROM collections WHERE id = $1", UUID(collection_id)
        )
        stored_context = trace.get_current_span(propagate.extract(stored)).get_span_context()
        assert stored_context.trace_id == creation, "the creating API call's trace is stored"

        weeks = {w["id"] for w in await collector.weeks(collection_id)}
        assert len(weeks) == 2

        def reconciled(s: ReadableSpan) -> bool:
            return dispatches(collection_id)(s) and attr(s, "amc.dispatch_kind") == "reconcile"

        # Both weeks re-requested (in one pass or two).
        found = await wait_spans(
            spans, reconciled, 2, until=lambda f: {attr(s, "amc.week_id") for s in f} == weeks
        )
        reconciles = {attr(s, "amc.week_id"): s for s in found}
        assert set(reconciles) == weeks
        firsts = [
            s
            for s in spans.get_finished_spans()
            if dispatches(collection_id)(s) and attr(s, "amc.dispatch_kind") == "first"
        ]
        assert {attr(s, "amc.week_id") for s in firsts} == weeks
        assert len(firsts) == 2

        topic = collector.topics.name(WeekRequested.topic)
        traces = set()
        for dispatch in [*firsts, *reconciles.values()]:
            assert dispatch.parent is None, "each week request starts a trace"
            assert dispatch.kind is SpanKind.INTERNAL
            assert attr(dispatch, "amc.user_id") == "trace-user"
            assert attr(dispatch, "amc.instance_id") == "amc-trace"
            assert attr(dispatch, "amc.attempt") == 1
            links = [(link.context.trace_id, link.context.span_id) for link in dispatch.links]
            assert (stored_context.trace_id, stored_context.span_id) in links
            producer = await sent_under(spans, topic, dispatch)
            assert producer.kind is SpanKind.PRODUCER
            assert producer.context.trace_id == dispatch.context.trace_id
            traces.add(dispatch.context.trace_id)
        assert len(traces) == 4, "two weeks, each requested twice: four traces"
        assert creation not in traces


async def test_a_retry_is_a_new_dispatch_trace_linked_to_the_collection(
    spans: InMemorySpanExporter, uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    def plan(r: WeekRequested) -> Outcome:
        return "transient" if r.attempt == 1 else "ok"

    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05, plan=plan),
    ):
        collection_id, creation = await create_traced(
            collector, start_date="2024-01-01", end_date="2024-01-07", max_attempts=2
        )
        await collector.wait_status(collection_id, "COMPLETED", timeout_s=30)
        found = await wait_spans(spans, dispatches(collection_id), 2)
        by_kind = {attr(s, "amc.dispatch_kind"): s for s in found}
        assert set(by_kind) == {"first", "retry"}
        first, retry = by_kind["first"], by_kind["retry"]
        assert (attr(first, "amc.attempt"), attr(retry, "amc.attempt")) == (1, 2)
        assert attr(first, "amc.week_id") == attr(retry, "amc.week_id")
        assert retry.parent is None
        assert retry.context.trace_id not in (first.context.trace_id, creation)
        assert creation in {link.context.trace_id for link in retry.links}
        producer = await sent_under(spans, collector.topics.name(WeekRequested.topic), retry)
        assert producer.context.trace_id == retry.context.trace_id
