"""What operators see of the token service: the refresh in the requester's trace, and gauges."""

from __future__ import annotations

from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.contract import TokenRefreshed
from shared.telemetry import trace_carrier
from tests.integration.token.harness import TokenHarness, refreshed_for, wait_until


async def test_an_on_demand_refresh_continues_the_requesters_trace(
    token_service: TokenHarness, spans: InMemorySpanExporter, uid: str
) -> None:
    h = token_service
    user = f"traced-{uid}"
    await h.seed(user, await h.sim_user(user), expires_in=timedelta(seconds=5))
    with trace.get_tracer("test").start_as_current_span("requester") as requester:
        carrier = trace_carrier()
    trace_id = requester.get_span_context().trace_id

    await h.request_refresh(user, headers=carrier)
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, user)))
        (record,) = refreshed_for(reader.records, topic, user)
    # The answer travels in the same trace, so the requester's consumer continues it.
    assert record.headers["traceparent"].split("-")[1] == format(trace_id, "032x")

    def in_trace() -> list[object]:
        return [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]

    async def answered() -> bool:
        return any(getattr(s, "kind", None) is SpanKind.PRODUCER for s in in_trace())

    await wait_until(answered, what="the token.refreshed publish span")
    mine = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine}
    (refresh,) = [s for s in mine if s.name == "token refresh"]
    assert (refresh.attributes or {})["amc.user_id"] == user
    assert (refresh.attributes or {})["amc.token.outcome"] == "refreshed"
    # refresh <- the request's consumer span <- the requester
    assert refresh.parent is not None
    consumer = by_id[refresh.parent.span_id]
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is not None
    assert consumer.parent.span_id == requester.get_span_context().span_id
    lwa_calls = [s for s in mine if s.kind is SpanKind.CLIENT and "POST" in s.name]
    assert lwa_calls, [s.name for s in mine]
    (publish,) = [s for s in mine if s.kind is SpanKind.PRODUCER]
    assert (publish.attributes or {})["messaging.destination.name"] == topic
    assert publish.parent is not None
    assert publish.parent.span_id == refresh.context.span_id
    # No token in any attribute of the trace.
    values = " ".join(str(v) for s in mine for v in (s.attributes or {}).values())
    assert not [secret for secret in h.secrets if secret and secret in values]


async def test_tokens_by_state_are_exported(token_service: TokenHarness, uid: str) -> None:
    h = token_service
    await h.seed(f"fresh-{uid}", await h.sim_user(f"fresh-{uid}"), expires_in=timedelta(hours=1))
    await h.seed(f"stale-{uid}", await h.sim_user(f"stale-{uid}"), expires_in=timedelta(hours=-1))
    await h.seed(f"gone-{uid}", await h.sim_user(f"gone-{uid}"))
    async with h.pool.acquire() as conn:
        await conn.execute(
            "UPDATE tokens SET status = 'REAUTH_REQUIRED' WHERE user_id = $1", f"gone-{uid}"
        )

    # A scrape reads the database at that moment (no call of ours refreshes the gauges).
    scraped = await h.http.get(h.base_url + "/metrics")
    assert scraped.status_code == 200
    # The schema is this test's own: its counts are exactly what was seeded.
    for state in ("ACTIVE", "EXPIRED", "REAUTH_REQUIRED"):
        assert f'amc_tokens{{state="{state}"}} 1.0' in scraped.text, state
    assert "amc_outbox_backlog " in scraped.text


async def test_a_proactive_refresh_is_its_own_trace_linked_to_its_cycle(
    token_service: TokenHarness, spans: InMemorySpanExporter, uid: str
) -> None:
    h = token_service
    users = [f"cycle-{uid}-{n}" for n in range(2)]
    for user in users:
        await h.seed(user, await h.sim_user(user), expires_in=timedelta(seconds=60))
    assert (await h.service.refresher.run_cycle()).refreshed == 2

    finished = spans.get_finished_spans()
    refreshes = [
        s
        for s in finished
        if s.name == "token refresh" and (s.attributes or {}).get("amc.user_id") in users
    ]
    assert len(refreshes) == 2
    assert len({s.context.trace_id for s in refreshes}) == 2, "one trace per token"
    (cycle_id,) = {link.context.span_id for s in refreshes for link in s.links}
    (cycle,) = [s for s in finished if s.context.span_id == cycle_id]
    assert cycle.name == "token.refresh_cycle"
    for refresh in refreshes:
        assert refresh.parent is None
        assert (refresh.attributes or {})["amc.token.trigger"] == "cycle"
