"""Traces of runs: one per fired run (root "schedule fire"), the API call's for a manual one,
and the lateness histogram under its alerting name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from services.scheduler import store
from shared.contract import ScheduleDue
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
    wait_until,
)
from tests.support.spans import attr, wait_spans

# Two seconds before 09:00: both schedules are created before they are due, then fire together.
START = datetime(2024, 3, 8, 8, 59, 58, tzinfo=UTC)
FIRE = datetime(2024, 3, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(START)


@pytest.fixture
async def scheduler(
    spans: InMemorySpanExporter,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    clock: ShiftedClock,
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock) as running:
        yield running


async def test_each_fired_run_is_its_own_trace_rooted_at_schedule_fire(
    scheduler: Scheduler, spans: InMemorySpanExporter, clock: ShiftedClock
) -> None:
    clock.set(START)  # now that the scheduler is up
    first = await scheduler.create(user_id="trace-user", instance_id="amc-trace")
    second = await scheduler.create(user_id="trace-user", instance_id="amc-trace")
    ids = {first["id"], second["id"]}
    assert {first["next_fire_at"], second["next_fire_at"]} == {"2024-03-08T09:00:00Z"}

    fires = await wait_spans(
        spans, lambda s: s.name == "schedule fire" and attr(s, "amc.schedule_id") in ids, 2
    )
    assert len(fires) == 2
    runs = {r["id"] for sid in ids for r in await scheduler.runs(sid)}
    for fire in fires:
        assert fire.parent is None, "a run's trace starts at its fire"
        assert fire.kind is SpanKind.INTERNAL
        assert fire.instrumentation_scope is not None
        assert fire.instrumentation_scope.name == "amc.scheduler"
        assert attr(fire, "amc.run_id") in runs
        assert attr(fire, "amc.fire_time") == FIRE.isoformat()
        assert attr(fire, "amc.run_kind") == "SCHEDULED"
        assert attr(fire, "amc.user_id") == "trace-user"
        assert attr(fire, "amc.instance_id") == "amc-trace"
        assert fire.start_time is not None
        assert fire.end_time is not None
        assert fire.start_time <= fire.end_time
    assert {attr(f, "amc.run_id") for f in fires} == runs
    # Fired in one batch (one start), yet two traces.
    assert fires[0].start_time == fires[1].start_time
    assert fires[0].context.trace_id != fires[1].context.trace_id

    # Each run's schedule.due is sent under its own fire span.
    topic = scheduler.topics.name(ScheduleDue.topic)
    parents = {f.context.span_id: f for f in fires}
    producers = await wait_spans(
        spans,
        lambda s: (
            s.name == f"send {topic}" and s.parent is not None and s.parent.span_id in parents
        ),
        2,
    )
    assert len(producers) == 2
    for producer in producers:
        assert producer.kind is SpanKind.PRODUCER
        assert producer.parent is not None
        assert producer.context.trace_id == parents[producer.parent.span_id].context.trace_id
    assert len({p.parent.span_id for p in producers if p.parent}) == 2

    # The lateness of both runs was observed, under the alert's metric name.
    response = await scheduler.http.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    lateness = families["amc_schedule_lateness_seconds"]
    assert lateness.type == "histogram"
    count = next(s.value for s in lateness.samples if s.name.endswith("_count"))
    assert count == 2
    les = {s.labels["le"] for s in lateness.samples if s.name.endswith("_bucket")}
    assert {"0.1", "1.0", "60.0", "300.0", "900.0", "3600.0"} <= les
    assert "amc_scheduler_claim_lateness_seconds" not in families
    # Both runs counted, by kind and state.
    written = {
        (s.labels["kind"], s.labels["state"]): s.value
        for s in families["amc_scheduler_runs"].samples
        if s.name.endswith("_total")
    }
    assert written == {("SCHEDULED", "EMITTED"): 2}


async def test_a_failed_batch_ends_its_run_spans_with_error(
    scheduler: Scheduler,
    spans: InMemorySpanExporter,
    clock: ShiftedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    advance = store.advance
    failures: list[int] = []

    async def advance_failing_once(*args: Any) -> None:
        if not failures:
            failures.append(1)
            raise asyncpg.exceptions.SerializationError("injected")
        await advance(*args)

    monkeypatch.setattr(store, "advance", advance_failing_once)
    clock.set(START)
    created = await scheduler.create()

    fires = await wait_spans(
        spans,
        lambda s: s.name == "schedule fire" and attr(s, "amc.schedule_id") == created["id"],
        2,
    )
    [run] = await scheduler.runs(created["id"])
    failed = [f for f in fires if f.status.status_code is StatusCode.ERROR]
    ok = [f for f in fires if f.status.status_code is not StatusCode.ERROR]
    # The failed attempt was rolled back (its run does not exist); the retry fired the run.
    assert len(failed) == 1
    assert "injected" in (failed[0].status.description or "")
    assert attr(failed[0], "amc.run_id") != run["id"]
    assert [attr(f, "amc.run_id") for f in ok] == [run["id"]]


async def test_a_manual_trigger_is_published_in_the_api_calls_trace(
    scheduler: Scheduler, spans: InMemorySpanExporter
) -> None:
    created = await scheduler.create(user_id="trigger-user")
    with trace.get_tracer("test").start_as_current_span("operator") as operator:
        response = await scheduler.http.post(
            f"/schedules/{created['id']}/trigger", json={"force": True}
        )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    trace_id = operator.get_span_context().trace_id

    [triggered] = await wait_spans(
        spans, lambda s: s.name == "schedule trigger" and attr(s, "amc.run_id") == run_id, 1
    )
    assert triggered.context.trace_id == trace_id
    assert attr(triggered, "amc.schedule_id") == created["id"]
    assert attr(triggered, "amc.run_kind") == "MANUAL"
    assert attr(triggered, "amc.user_id") == "trigger-user"
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}
    assert triggered.parent is not None
    assert by_id[triggered.parent.span_id].kind is SpanKind.SERVER

    topic = scheduler.topics.name(ScheduleDue.topic)
    [producer] = await wait_spans(
        spans,
        lambda s: (
            s.name == f"send {topic}"
            and s.parent is not None
            and s.parent.span_id == triggered.context.span_id
        ),
        1,
    )
    assert producer.kind is SpanKind.PRODUCER
    assert producer.context.trace_id == trace_id


async def test_a_released_buffered_run_is_a_trace_of_its_own(
    scheduler: Scheduler, spans: InMemorySpanExporter, clock: ShiftedClock
) -> None:
    clock.set(datetime(2024, 3, 8, 12, 5, tzinfo=UTC))  # the next fire time is 5 min away
    created = await scheduler.create(cron="*/10 * * * *", overlap_policy="buffer_one")
    sid = created["id"]
    manual = (await scheduler.http.post(f"/schedules/{sid}/trigger", json={"force": True})).json()[
        "id"
    ]
    await scheduler.set_next_fire(sid, clock() - timedelta(seconds=5))

    async def buffered() -> bool:
        return [r["state"] for r in await scheduler.runs(sid, kind="SCHEDULED")] == ["BUFFERED"]

    await wait_until(buffered, what="a buffered run")
    [run] = await scheduler.runs(sid, kind="SCHEDULED")
    await scheduler.complete(manual, "SUCCEEDED")

    [fire] = await wait_spans(
        spans, lambda s: s.name == "schedule fire" and attr(s, "amc.run_id") == run["id"], 1
    )
    assert fire.parent is None
    assert attr(fire, "amc.run_kind") == "SCHEDULED"
    # Linked to the outcome that released it, which is another trace.
    assert [link.context.trace_id for link in fire.links] != []
    assert all(link.context.trace_id != fire.context.trace_id for link in fire.links)
    topic = scheduler.topics.name(ScheduleDue.topic)
    await wait_spans(
        spans,
        lambda s: (
            s.name == f"send {topic}"
            and s.parent is not None
            and s.parent.span_id == fire.context.span_id
        ),
        1,
    )
