"""The proactive cycle: what it claims, what it stores, how failures stay contained."""

from __future__ import annotations

from datetime import timedelta

from shared.contract import TokenRefreshed, TokenRefreshFailed
from shared.crypto import KeyRing
from shared.ownership import Claimant
from tests.integration.token.harness import TokenHarness


async def test_cycle_refreshes_only_tokens_within_the_buffer(token_service: TokenHarness) -> None:
    h = token_service  # buffer 600 s
    for user, expires_in in (("soon", 300), ("later", 3000), ("expired", -60)):
        await h.seed(user, await h.sim_user(user), expires_in=timedelta(seconds=expires_in))
    result = await h.service.refresher.run_cycle()
    assert (result.claimed, result.refreshed) == (2, 2)
    assert await h.lwa_calls() == 2
    later = await h.row("later")
    assert later.consecutive_failures == 0
    soon = (await h.row("soon")).expires_at
    assert soon is not None
    assert later.expires_at is not None
    assert soon > later.expires_at
    # Once refreshed, nothing is due: a second cycle in the same period calls LWA for nothing.
    assert (await h.service.refresher.run_cycle()).claimed == 0
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: len([x for x in r if x.topic == topic]) >= 2)
        users = {r.key for r in reader.records if r.topic == topic}
    assert users == {b"soon", b"expired"}


async def test_a_new_refresh_token_from_lwa_is_stored(token_service: TokenHarness) -> None:
    h = token_service
    await h.sim.configure(rotate_refresh_tokens=True)
    original = await h.sim_user("rotating")
    await h.seed("rotating", original, expires_in=timedelta(seconds=60))
    for _ in range(3):
        result = await h.service.refresher.run_cycle()
        assert result.refreshed == 1, "the previous refresh token was voided by LWA"
        await h.pool.execute("UPDATE tokens SET expires_at = now()")
    stored = h.service.vault.storage.decrypt(
        await h.pool.fetchval("SELECT refresh_token_enc FROM tokens WHERE user_id = 'rotating'")
    )
    assert stored != original
    assert stored in h.secrets


async def test_one_users_failure_never_stops_the_others(token_service: TokenHarness) -> None:
    h = token_service
    foreign = [KeyRing.generate_key()]
    await h.seed("good", await h.sim_user("good"), expires_in=timedelta(seconds=5))
    await h.seed("lost-key", "Atzr|sealed-by-lost-key", keys=foreign)
    await h.seed("revoked", await h.sim_user("revoked"))
    await h.sim.revoke_user("revoked")
    await h.pool.execute(
        "UPDATE tokens SET refresh_token_enc = 'garbage' WHERE user_id = 'lost-key'"
    )
    await h.seed("corrupt", "Atzr|corrupted")
    await h.pool.execute(
        "UPDATE tokens SET refresh_token_enc = 'not-fernet' WHERE user_id = 'corrupt'"
    )
    result = await h.service.refresher.run_cycle()
    assert (result.claimed, result.refreshed, result.reauth_required) == (4, 1, 3)
    assert await h.lwa_calls() == 2  # undecryptable tokens never reach LWA
    for user in ("lost-key", "corrupt"):
        row = await h.row(user)
        assert row.status == "REAUTH_REQUIRED"
        assert row.last_error is not None
        assert "cannot be decrypted" in row.last_error
    topic = h.topic(TokenRefreshFailed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: len([x for x in r if x.topic == topic]) >= 3)
        failed = {
            r.key: TokenRefreshFailed.model_validate(r.json())
            for r in reader.records
            if r.topic == topic
        }
    assert all(f.reauth_required for f in failed.values())
    assert "cannot be decrypted" in failed[b"corrupt"].reason
    assert "key was removed" in failed[b"lost-key"].reason


async def test_a_live_claim_is_respected_and_an_expired_one_taken_over(
    token_service: TokenHarness,
) -> None:
    h = token_service
    await h.seed("claimed", await h.sim_user("claimed"), expires_in=timedelta(seconds=5))
    # Another replica claimed it and is refreshing it right now.
    await h.pool.execute(
        """UPDATE tokens SET claim_id = gen_random_uuid(), claimed_by = 'other:1',
                  claim_expires_at = now() + interval '1 minute'"""
    )
    assert (await h.service.refresher.run_cycle()).claimed == 0
    # That replica crashed: once its lease has run out, the token is refreshed.
    await h.pool.execute("UPDATE tokens SET claim_expires_at = now() - interval '1 second'")
    result = await h.service.refresher.run_cycle()
    assert result.refreshed == 1
    row = await h.row("claimed")
    assert row.claimed_by is None
    assert await h.lwa_calls() == 1


async def test_a_lost_claim_does_not_overwrite_a_newer_registration(
    token_service: TokenHarness,
) -> None:
    h = token_service
    from services.token import store

    await h.seed("re-reg", await h.sim_user("re-reg"), expires_in=timedelta(seconds=5))
    async with h.pool.acquire() as conn:
        (claim,) = await store.claim_due(conn, Claimant("crashed:1", 60.0), 10, 600.0)
    # The user authorizes again while the old claim is out.
    await h.seed("re-reg", "Atzr|newer-grant", expires_in=timedelta(minutes=55))
    newer_expiry = (await h.row("re-reg")).expires_at
    assert newer_expiry is not None
    grant = store.Grant(
        claim=claim,
        refresh_token_enc=h.service.vault.storage.encrypt("Atzr|stale"),
        access_token_enc=h.service.vault.storage.encrypt("Atza|stale"),
        expires_at=newer_expiry,
    )
    async with h.pool.acquire() as conn:
        stored = await store.finish_successes(conn, [grant], h.service.vault.current_fp)
    assert stored == set()
    h.secrets.update({"Atzr|stale", "Atza|stale"})
    value = await h.pool.fetchval("SELECT refresh_token_enc FROM tokens WHERE user_id='re-reg'")
    assert h.service.vault.storage.decrypt(value) == "Atzr|newer-grant"
