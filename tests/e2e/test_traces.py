"""One trace per run, as an operator sees it in Jaeger: the four services export over OTLP to
an in-test receiver, and the parent/child chain of a scheduled run and of a collection week is
checked hop by hop (docs/architecture.md, "Traces", describes the shape)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from amclocal.stack import ServiceStack
from tests.e2e.test_runs import RUN, eventually
from tests.support.otlp import ReceivedSpan, TraceStore

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


async def settled(check: Callable[[], None], what: str, timeout_s: float = 30.0) -> None:
    """Run `check` (assertions on the received spans) until it passes. Each service exports
    on its own schedule, so a trace arrives piece by piece; the last failure is raised."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            check()
            return
        except (AssertionError, KeyError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: {exc!r}") from exc
        await asyncio.sleep(0.3)


def one(spans: list[ReceivedSpan], what: str) -> ReceivedSpan:
    assert len(spans) == 1, f"expected one {what}, found {[(s.service, s.name) for s in spans]}"
    return spans[0]


def child(
    store: TraceStore, parent: ReceivedSpan, name: str, kind: int | None = None
) -> list[ReceivedSpan]:
    return [
        s for s in store.children(parent) if s.name == name and (kind is None or s.kind == kind)
    ]


def assert_request_handled_in_trace(
    store: TraceStore, request: ReceivedSpan, stack: ServiceStack
) -> ReceivedSpan:
    """Below the poller's consume of a run request: the AMC submit, polls and download, each
    with its HTTP calls, and the events announcing them. Returns execution.completed's send."""
    submit = one(child(store, request, "execution submit"), "submit span")
    assert submit.service == "amc-poller"
    assert submit.attributes["amc.execution_id"]
    assert [s for s in store.children(submit) if s.kind == CLIENT], "the POST to AMC"
    submitted = one(
        child(store, submit, f"send {stack.topics.name('execution.submitted')}", PRODUCER),
        "execution.submitted send",
    )
    polls = child(store, request, "execution poll")
    assert polls, "at least one status poll"
    for poll in polls:
        assert [s for s in store.children(poll) if s.kind == CLIENT], "each poll's GET"
        assert poll.attributes["amc.execution_id"] == submit.attributes["amc.execution_id"]
    download = one(child(store, request, "execution download"), "download span")
    assert [s for s in store.children(download) if s.kind == CLIENT], "the download's GETs"
    completed = one(
        child(store, download, f"send {stack.topics.name('execution.completed')}", PRODUCER),
        "execution.completed send",
    )
    amc_id = download.attributes["amc.amc_execution_id"]
    assert amc_id
    assert polls[-1].attributes["amc.amc_execution_id"] == amc_id
    assert submitted.trace_id == completed.trace_id == request.trace_id
    return completed


def consumers_of(store: TraceStore, producer: ReceivedSpan) -> dict[str, ReceivedSpan]:
    return {s.service: s for s in store.children(producer) if s.kind == CONSUMER}


def assert_no_secret(store: TraceStore, trace_id: str, secrets: list[str]) -> None:
    values = " ".join(v for s in store.trace(trace_id) for v in s.attributes.values())
    assert not [secret for secret in secrets if secret in values]


@pytest.mark.slow
async def test_a_scheduled_run_is_one_trace_from_the_firing_to_its_outcome(
    stack: ServiceStack,
    api: dict[str, httpx.AsyncClient],
    traces: tuple[TraceStore, str],
) -> None:
    store = traces[0]
    workflow_id = f"wf-traced-{uuid.uuid4().hex[:8]}"
    # Every minute: the firing loop (not a manual trigger) fires it within a minute.
    created = await api["scheduler"].post(
        "/schedules",
        json=RUN | {"workflow_id": workflow_id, "cron": "* * * * *", "timezone": "UTC"},
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]

    async def finished_run() -> dict[str, Any] | None:
        page = (await api["scheduler"].get(f"/schedules/{schedule_id}/runs")).json()
        done = [r for r in page["items"] if r["state"] not in ("EMITTED", "SUBMITTED")]
        return done[-1] if done else None

    try:
        run = await eventually(finished_run, "the first scheduled run to finish", 150)
    finally:
        await api["scheduler"].post(f"/schedules/{schedule_id}/pause", json={"note": "test over"})
    assert run["state"] == "SUCCEEDED", run
    completed_topic = stack.topics.name("execution.completed")

    async def outcome_consumed() -> ReceivedSpan | None:
        fired = store.with_attribute("amc.run_id", run["id"])
        roots = [s for s in fired if s.name == "schedule fire"]
        if not roots:
            return None
        handled = [
            s
            for s in store.trace(roots[0].trace_id)
            if s.service == "amc-scheduler" and s.name == f"{completed_topic} process"
        ]
        return roots[0] if handled else None

    fire = await eventually(outcome_consumed, "the run's trace to reach the receiver", 30)

    def whole_chain() -> None:
        # The scheduler's claim is the root of the run's trace.
        assert fire.parent_id is None
        assert fire.service == "amc-scheduler"
        assert fire.attributes["amc.schedule_id"] == schedule_id
        due = one(child(store, fire, f"send {stack.topics.name('schedule.due')}", PRODUCER), "send")
        request = consumers_of(store, due)["amc-poller"]
        assert request.attributes["amc.run_id"] == run["id"]
        completed = assert_request_handled_in_trace(store, request, stack)
        # The outcome is handled, in the same trace, by the scheduler (the run's state) and
        # the collector (which ignores runs it did not start, but its consume is visible).
        handlers = consumers_of(store, completed)
        assert {"amc-scheduler", "amc-collector"} <= set(handlers)
        assert handlers["amc-scheduler"].attributes["amc.run_id"] == run["id"]
        assert_no_secret(store, fire.trace_id, [stack.keys["API_KEY"], "Bearer", "Atza|"])

    await settled(whole_chain, "the scheduled run's trace")


async def test_a_collection_week_is_one_trace_linked_to_the_collections_creation(
    stack: ServiceStack,
    api: dict[str, httpx.AsyncClient],
    traces: tuple[TraceStore, str],
) -> None:
    store = traces[0]
    workflow_id = f"wf-traced-coll-{uuid.uuid4().hex[:8]}"
    start = date.today() - timedelta(days=40)
    created = await api["collector"].post(
        "/collections",
        json=RUN
        | {
            "workflow_id": workflow_id,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=6)).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    collection_id = created.json()["id"]

    async def done() -> bool:
        body = (await api["collector"].get(f"/collections/{collection_id}")).json()
        return bool(body["status"] == "COMPLETED")

    await eventually(done, "the one-week collection to complete", 120)
    completed_topic = stack.topics.name("execution.completed")

    async def week_marked() -> ReceivedSpan | None:
        dispatches = [
            s
            for s in store.with_attribute("amc.collection_id", collection_id)
            if s.name == "week dispatch"
        ]
        for dispatch in dispatches:
            marked = [
                s
                for s in store.trace(dispatch.trace_id)
                if s.service == "amc-collector" and s.name == f"{completed_topic} process"
            ]
            if marked:
                return dispatch
        return None

    dispatch = await eventually(week_marked, "the week's trace to reach the receiver", 30)

    def whole_chain() -> None:
        assert dispatch.parent_id is None
        assert dispatch.service == "amc-collector"
        week_id = dispatch.attributes["amc.week_id"]
        # The week's trace links back to the API call that created the collection.
        linked = {trace_id for trace_id, _ in dispatch.links}
        creation = one(
            [s for s in store.spans if s.kind == SERVER and s.trace_id in linked],
            "creation call linked from the week",
        )
        assert "POST" in creation.name
        requested = one(
            child(store, dispatch, f"send {stack.topics.name('week.requested')}", PRODUCER),
            "send",
        )
        request = consumers_of(store, requested)["amc-poller"]
        assert request.attributes["amc.week_id"] == week_id
        completed = assert_request_handled_in_trace(store, request, stack)
        marked = consumers_of(store, completed)["amc-collector"]
        assert marked.attributes["amc.week_id"] == week_id
        assert_no_secret(store, dispatch.trace_id, [stack.keys["API_KEY"], "Bearer", "Atza|"])

    await settled(whole_chain, "the collection week's trace")
