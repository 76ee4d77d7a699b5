"""token.refresh_requested over the real broker: answers, de-duplication, failure classes."""

from __future__ import annotations

from datetime import timedelta

from amclocal.simulator import FaultRule, RouteKind
from shared.contract import TokenRefreshed, TokenRefreshFailed
from shared.crypto import token_fingerprint
from tests.integration.token.harness import (
    SEEDED_ACCESS,
    TokenHarness,
    refreshed_for,
    wait_until,
)


async def test_unknown_user_gets_reauth_required(token_service: TokenHarness) -> None:
    h = token_service
    await h.request_refresh("ghost")
    topic = h.topic(TokenRefreshFailed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "ghost")))
        (record,) = refreshed_for(reader.records, topic, "ghost")
    failed = TokenRefreshFailed.model_validate(record.json())
    assert failed.reauth_required is True
    assert "no token is registered for user 'ghost'" in failed.reason
    assert await h.lwa_calls() == 0


async def test_concurrent_requests_for_one_user_make_one_lwa_call(
    token_service: TokenHarness,
) -> None:
    h = token_service
    refresh_token = await h.sim_user("busy")
    await h.seed("busy", refresh_token, expires_in=timedelta(seconds=30))
    # Slow LWA: the later requests arrive while the refresh is in flight.
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=300))
    await h.request_refresh("busy", times=6)
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "busy")))

        async def processed_all() -> bool:
            value = h.service.registry.get_sample_value(
                "amc_events_consumed_total",
                {"topic": h.topic("token.refresh_requested"), "outcome": "processed"},
            )
            return (value or 0) >= 6

        from tests.integration.token.harness import wait_until

        await wait_until(processed_all, what="all six requests handled")
        await h.outbox_drained()
        await reader.poll()
        await reader.poll()
        records = refreshed_for(reader.records, topic, "busy")
    assert await h.lwa_calls() == 1
    tokens = {h.open_event(r) for r in records}
    assert len(tokens) == 1, "every answer carries the one refreshed token"
    assert tokens <= h.secrets


async def test_token_with_life_left_is_republished_once_then_refreshed(
    token_service: TokenHarness,
) -> None:
    h = token_service
    refresh_token = await h.sim_user("fresh")
    await h.seed("fresh", refresh_token, expires_in=timedelta(minutes=50))
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await h.request_refresh("fresh")
        await reader.wait_for(lambda r: len(refreshed_for(r, topic, "fresh")) >= 1)
        assert h.open_event(refreshed_for(reader.records, topic, "fresh")[0]) == (
            "Atza|seeded-old-access"
        )
        assert await h.lwa_calls() == 0
        # Asked again after seeing it: the requester found it rejected, so refresh for real.
        await h.request_refresh("fresh")
        await reader.wait_for(lambda r: len(refreshed_for(r, topic, "fresh")) >= 2)
        second = h.open_event(refreshed_for(reader.records, topic, "fresh")[1])
    assert second != "Atza|seeded-old-access"
    assert await h.lwa_calls() == 1


async def test_a_fresh_token_amc_refused_is_refreshed_once_for_a_burst(
    token_service: TokenHarness,
) -> None:
    """Requests naming the stored token as refused by AMC (issue 20): refreshed though it has
    most of an hour left, one LWA call for the burst; a late request naming it again gets
    the newer token, with no other call."""
    h = token_service
    refresh_token = await h.sim_user("revoked")
    await h.seed("revoked", refresh_token, expires_in=timedelta(minutes=50))
    refused = token_fingerprint(SEEDED_ACCESS)
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=300))
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await h.request_refresh("revoked", times=5, refused_fp=refused)
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "revoked")))
        await wait_until(lambda: _handled(h, 5), what="all five requests handled")
        await h.request_refresh("revoked", refused_fp=refused)
        await wait_until(lambda: _handled(h, 6), what="the late request handled")
        await h.outbox_drained()
        await reader.poll()
        await reader.poll()
        tokens = [h.open_event(r) for r in refreshed_for(reader.records, topic, "revoked")]
    assert await h.lwa_calls() == 1
    assert SEEDED_ACCESS not in tokens
    assert len(set(tokens)) == 1


async def _handled(h: TokenHarness, count: int) -> bool:
    value = h.service.registry.get_sample_value(
        "amc_events_consumed_total",
        {"topic": h.topic("token.refresh_requested"), "outcome": "processed"},
    )
    return (value or 0) >= count


async def test_revoked_grant_marks_reauth_required(token_service: TokenHarness) -> None:
    h = token_service
    refresh_token = await h.sim_user("revoked")
    await h.seed("revoked", refresh_token, expires_in=timedelta(seconds=10))
    await h.sim.revoke_user("revoked")
    topic = h.topic(TokenRefreshFailed.topic)
    async with h.reader() as reader:
        await h.request_refresh("revoked")
        await reader.wait_for(lambda r: len(refreshed_for(r, topic, "revoked")) >= 1)
        first = TokenRefreshFailed.model_validate(
            refreshed_for(reader.records, topic, "revoked")[0].json()
        )
        assert first.reauth_required is True
        assert "authorize again" in first.reason
        assert "invalid grant" in first.reason
        row = await h.row("revoked")
        assert row.status == "REAUTH_REQUIRED"
        assert row.last_error
        # Later requests are answered from the stored state, without calling LWA.
        await h.request_refresh("revoked")
        await reader.wait_for(lambda r: len(refreshed_for(r, topic, "revoked")) >= 2)
    assert await h.lwa_calls() == 1
    listing = (await h.api("GET", "/tokens", params={"status": "REAUTH_REQUIRED"})).json()
    assert [t["user_id"] for t in listing["items"]] == ["revoked"]


async def test_transient_failures_are_retried_then_reported(token_service: TokenHarness) -> None:
    h = token_service  # threshold 3, backoff 0.05 s .. 0.2 s
    refresh_token = await h.sim_user("flaky")
    await h.seed("flaky", refresh_token, expires_in=timedelta(seconds=10))
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], fail_next=10, status=503))
    topic = h.topic(TokenRefreshFailed.topic)
    async with h.reader() as reader:
        await h.request_refresh("flaky")
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "flaky")))
        (record,) = refreshed_for(reader.records, topic, "flaky")
    failed = TokenRefreshFailed.model_validate(record.json())
    assert failed.reauth_required is False
    assert "3 times in a row" in failed.reason
    assert "503" in failed.reason
    assert await h.lwa_calls() == 3
    row = await h.row("flaky")
    assert row.status == "ACTIVE"
    assert row.consecutive_failures == 3
    assert row.refresh_requested_at is None  # answered

    # LWA is back: the next cycle refreshes and clears the failure count.
    await h.sim.clear_faults()
    await h.pool.execute("UPDATE tokens SET next_attempt_at = NULL")
    result = await h.service.refresher.run_cycle()
    assert result.refreshed == 1
    row = await h.row("flaky")
    assert (row.consecutive_failures, row.last_error) == (0, None)


async def test_timeouts_count_as_transient_failures(token_service: TokenHarness) -> None:
    h = token_service  # LWA timeout 2 s in tests
    refresh_token = await h.sim_user("slow")
    await h.seed("slow", refresh_token, expires_in=timedelta(seconds=10))
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=2500))
    result = await h.service.refresher.run_cycle()
    assert (result.claimed, result.failed, result.refreshed) == (1, 1, 0)
    row = await h.row("slow")
    assert row.consecutive_failures == 1
    assert row.last_error is not None
    assert "timed out" in row.last_error
    assert row.status == "ACTIVE"
