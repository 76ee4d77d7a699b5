"""One run is one trace (the request's), token waits are spans, and the alerts' metrics exist."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import generate_latest

from amclocal.simulator import RouteKind, SimAccount, SimControl
from shared.contract import (
    Event,
    ExecutionCompleted,
    ExecutionRequested,
    ExecutionStatusChanged,
    ExecutionSubmitted,
    ScheduleDue,
    TokenRefreshed,
    TokenRefreshFailed,
)
from shared.telemetry import trace_carrier
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    TokenDesk,
    eventually,
    external,
    lwa_token,
    run_for,
    schedule_due,
)


async def own_account(simulator: SimControl, base: SimAccount, uid: str) -> SimAccount:
    """A user and an instance of this test only (same LWA app as the poller's)."""
    account = dataclasses.replace(
        base,
        user_id=f"user-{uid}",
        refresh_token=f"Atzr|{uid}-refresh",
        instance_id=f"amc{uid}",
    )
    await simulator.register_user(account.user_id, account.refresh_token)
    await simulator.register_instance(
        account.instance_id, account.advertiser_id, account.marketplace_id
    )
    return account


async def send_traced(poller: PollerHarness, event: Event) -> int:
    """Produce `event` as part of a new trace started here; its trace id."""
    with trace.get_tracer("test").start_as_current_span("request") as cause:
        await poller.send(event, headers=trace_carrier())
    return cause.get_span_context().trace_id


def of_trace(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]


def named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def one(found: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    [span] = named(found, name)
    return span


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def descends(span: ReadableSpan, ancestor: ReadableSpan, found: Sequence[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in found}
    current: ReadableSpan | None = span
    while current is not None:
        if parent_id(current) == ancestor.context.span_id:
            return True
        up = parent_id(current)
        current = by_id.get(up) if up is not None else None
    return False


def http_children(parent: ReadableSpan, found: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [
        s
        for s in found
        if s.kind is SpanKind.CLIENT
        and parent_id(s) == parent.context.span_id
        and http_method(s) is not None
    ]


def http_method(span: ReadableSpan) -> Any:
    attributes = span.attributes or {}
    return attributes.get("http.request.method", attributes.get("http.method"))


def attribute_texts(found: Sequence[ReadableSpan]) -> list[str]:
    texts = []
    for span in found:
        texts += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            texts += [str(v) for v in (event.attributes or {}).values()]
    return texts


async def test_a_run_is_one_trace_from_the_request_to_its_completion(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    spans: InMemorySpanExporter,
    uid: str,
) -> None:
    account = await own_account(simulator, sim_account, uid)
    poller = await make_poller()
    access_token = await lwa_token(simulator.base_url, account)
    await poller.give_token(account.user_id, access_token)
    await eventually(lambda: poller.has_token(account.user_id), what="the token cached")

    trace_id = await send_traced(poller, schedule_due(run_for(account, f"wf-{uid}")))
    [row] = await poller.wait_terminal(1)
    assert row["status"] == "SUCCEEDED"
    assert row["trace_context"]["traceparent"].split("-")[1] == format(trace_id, "032x")
    completed = f"send {poller.topic(ExecutionCompleted)}"

    async def completion_published() -> list[ReadableSpan] | None:
        found = of_trace(spans, trace_id)
        return found if named(found, completed) else None

    found: list[ReadableSpan] = await eventually(completion_published, 20, "completed sent")

    consumer = one(found, f"{poller.topic(ScheduleDue)} process")
    assert consumer.kind is SpanKind.CONSUMER
    submit = one(found, "execution submit")
    polls = named(found, "execution poll")
    download = one(found, "execution download")
    assert polls
    jobs = [submit, *polls, download]
    # Each job is a child of the stored carrier: the request's CONSUMER span.
    assert all(parent_id(job) == consumer.context.span_id for job in jobs)

    submitted = one(found, f"send {poller.topic(ExecutionSubmitted)}")
    assert submitted.kind is SpanKind.PRODUCER
    assert descends(submitted, submit, found)
    done = one(found, completed)
    assert done.kind is SpanKind.PRODUCER
    assert descends(done, download, found)
    assert descends(done, consumer, found)

    # AMC calls are CLIENT spans under the job that made them.
    assert [http_method(s) for s in http_children(submit, found)] == ["POST"]
    for poll in polls:
        assert [http_method(s) for s in http_children(poll, found)] == ["GET"]
    # downloadUrls, then the (pre-signed) result file and AMC's metadata file.
    assert [http_method(s) for s in http_children(download, found)] == ["GET", "GET", "GET"]

    for job in jobs:
        attributes = job.attributes or {}
        assert attributes["amc.execution_id"] == str(row["execution_id"])
        assert attributes["amc.amc_execution_id"] == row["amc_execution_id"]
        assert attributes["amc.user_id"] == account.user_id
        assert attributes["amc.instance_id"] == account.instance_id
        assert attributes["amc.origin.kind"] == "schedule"
        assert job.status.status_code is not StatusCode.ERROR
    assert [(p.attributes or {})["amc.poll_count"] for p in polls] == list(range(1, len(polls) + 1))
    assert (polls[-1].attributes or {})["amc.amc_status"] == "SUCCEEDED"

    texts = attribute_texts(found)
    assert not [t for t in texts if access_token in t]
    assert not [t for t in texts if "Signature" in t]  # the pre-signed result URL's query


async def test_waiting_for_a_token_is_one_span_linked_to_the_token_refreshed(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    spans: InMemorySpanExporter,
    uid: str,
) -> None:
    account = await own_account(simulator, sim_account, uid)
    poller = await make_poller()
    async with TokenDesk(poller, simulator.base_url) as desk:
        desk.refresh_tokens[account.user_id] = account.refresh_token
        trace_id = await send_traced(poller, external(run_for(account, f"wf-{uid}")))
        [row] = await poller.wait_terminal(1)
    assert row["status"] == "SUCCEEDED"
    assert row["waiting_token_since"] is None
    found: list[ReadableSpan] = await eventually(
        lambda: _with(spans, trace_id, "execution download"), 20, "the download span"
    )

    consumer = one(found, f"{poller.topic(ExecutionRequested)} process")
    wait = one(found, "token wait")
    assert parent_id(wait) == consumer.context.span_id
    assert wait.status.status_code is StatusCode.UNSET
    assert (wait.attributes or {})["amc.execution_id"] == str(row["execution_id"])
    # Linked to the span that ended the wait: token.refreshed being consumed.
    [link] = wait.links
    refreshed = [
        s
        for s in spans.get_finished_spans()
        if s.context.span_id == link.context.span_id and s.context.trace_id == link.context.trace_id
    ]
    assert [s.name for s in refreshed] == [f"{poller.topic(TokenRefreshed)} process"]
    assert wait.start_time is not None
    assert wait.end_time is not None
    assert refreshed[0].start_time is not None
    # From when the request was parked until the token came.
    assert wait.start_time <= refreshed[0].start_time <= wait.end_time
    assert wait.start_time < row["created_at"].timestamp() * 1e9 + 50e6
    # The resume is announced in the run's trace, and submitting follows it.
    resumed = [
        s
        for s in named(found, f"send {poller.topic(ExecutionStatusChanged)}")
        if parent_id(s) == wait.context.span_id
    ]
    assert len(resumed) == 1
    submit = one(found, "execution submit")
    assert submit.start_time is not None
    assert submit.start_time >= wait.end_time


async def test_a_failed_token_refresh_ends_the_wait_span_in_error(
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    spans: InMemorySpanExporter,
    uid: str,
) -> None:
    account = await own_account(simulator, sim_account, uid)
    poller = await make_poller()
    async with TokenDesk(poller, simulator.base_url):  # knows no refresh token: refuses
        trace_id = await send_traced(poller, external(run_for(account, f"wf-{uid}")))
        [row] = await poller.wait_terminal(1)
    assert row["status"] == "FAILED"
    found: list[ReadableSpan] = await eventually(
        lambda: _with(spans, trace_id, "token wait"), 20, "the token wait span"
    )
    wait = one(found, "token wait")
    assert wait.status.status_code is StatusCode.ERROR
    [link] = wait.links
    failing = [s for s in spans.get_finished_spans() if s.context.span_id == link.context.span_id]
    assert [s.name for s in failing] == [f"{poller.topic(TokenRefreshFailed)} process"]


async def test_throttled_calls_are_counted_per_instance_and_executions_by_state(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount, uid: str
) -> None:
    account = await own_account(simulator, sim_account, uid)
    # One request per second: the first status poll after the POST is answered 429.
    await simulator.configure(rate_limit_per_second=1)
    poller = await make_poller()
    registry = poller.runtime.registry

    await poller.send(external(run_for(account, f"wf-{uid}")))
    await eventually(lambda: poller.rows(), what="the execution row")
    await poller.runtime.refresh_gauges()
    assert registry.get_sample_value("amc_executions", {"state": "WAITING_FOR_TOKEN"}) == 1

    await poller.give_token(account.user_id, await lwa_token(simulator.base_url, account))
    [row] = await poller.wait_terminal(1)
    assert row["status"] == "SUCCEEDED"

    answered = [
        r for r in await simulator.requests(account.instance_id) if r.kind is not RouteKind.RESULTS
    ]
    throttled = [r for r in answered if r.status == 429]
    assert throttled, "the simulator throttled nothing: the test proves nothing"

    def counted(**labels: str) -> float:
        total = 0.0
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name == "amc_api_requests_total" and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    instance = account.instance_id
    assert counted(amc_instance=instance, status="429") == len(throttled)
    assert counted(amc_instance=instance) == len(answered)
    assert counted(amc_instance=instance, endpoint="create", status="200") == 1
    assert counted(amc_instance=instance, endpoint="download_urls", status="200") == 1

    await poller.runtime.refresh_gauges()
    text = generate_latest(registry).decode()
    assert 'amc_executions{state="WAITING_FOR_TOKEN"} 0.0' in text
    assert 'amc_executions{state="RUNNING"} 0.0' in text
    assert 'amc_poller_executions_completed_total{status="SUCCEEDED"} 1.0' in text
    line = rf'amc_api_requests_total{{amc_instance="{instance}",endpoint="\w+",status="429"}} '
    assert re.search(line + r"[1-9]", text)


async def _with(spans: InMemorySpanExporter, trace_id: int, name: str) -> list[ReadableSpan] | None:
    found = of_trace(spans, trace_id)
    return found if named(found, name) else None
