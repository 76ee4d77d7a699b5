"""Registration over HTTP: authorization-code exchange, direct refresh tokens, inspection."""

from __future__ import annotations

from amclocal.simulator import RouteKind
from shared.contract import TokenRefreshed
from tests.integration.token.harness import CLIENT_ID, TokenHarness, refreshed_for

REDIRECT = "https://app.example.com/oauth/callback"


async def test_code_exchange_stores_encrypted_tokens_and_publishes(
    token_service: TokenHarness,
) -> None:
    h = token_service
    h.secrets.add("code-abc-123")
    await h.sim.register_code("code-abc-123", "user-web", REDIRECT)
    response = await h.api(
        "POST",
        "/oauth/exchange",
        json={"user_id": "user-web", "code": "code-abc-123", "redirect_uri": REDIRECT},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "user-web"
    assert body["status"] == "ACTIVE"
    assert body["key_current"] is True
    assert body["expires_at"] is not None

    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "user-web")))
        (record,) = refreshed_for(reader.records, topic, "user-web")
    access = h.open_event(record)
    assert access.startswith("Atza|")
    assert access in h.secrets  # the token LWA issued, nothing else
    raw = await h.pool.fetchrow("SELECT * FROM tokens WHERE user_id = 'user-web'")
    assert access not in str(dict(raw))
    assert h.service.vault.storage.decrypt(raw["access_token_enc"]) == access

    # A code works once: a second exchange is refused with LWA's reason, the code redacted.
    again = await h.api(
        "POST",
        "/oauth/exchange",
        json={"user_id": "user-web", "code": "code-abc-123", "redirect_uri": REDIRECT},
    )
    assert again.status_code == 400
    assert "LWA refused the authorization code" in again.json()["detail"]


async def test_exchange_requires_the_api_key_and_valid_fields(token_service: TokenHarness) -> None:
    h = token_service
    body = {"user_id": "u1", "code": "c", "redirect_uri": REDIRECT}
    assert (await h.api("POST", "/oauth/exchange", json=body, headers={})).status_code == 401
    missing = await h.api("POST", "/oauth/exchange", json={"user_id": "u1", "code": "c"})
    assert missing.status_code == 422
    assert "redirect_uri" in missing.text
    bad_user = await h.api("POST", "/oauth/exchange", json=body | {"user_id": "summary"})
    assert bad_user.status_code == 422
    assert "user_id" in bad_user.text
    assert "reserved" in bad_user.text
    mismatch_code = "code-for-other-uri"
    h.secrets.add(mismatch_code)
    await h.sim.register_code(mismatch_code, "u1", REDIRECT)
    wrong_uri = await h.api(
        "POST",
        "/oauth/exchange",
        json=body | {"code": mismatch_code, "redirect_uri": "https://evil.example.com/cb"},
    )
    assert wrong_uri.status_code == 400
    assert "redirect_uri" in wrong_uri.json()["detail"]


async def test_exchange_when_lwa_is_down_is_a_502(token_service: TokenHarness) -> None:
    from amclocal.simulator import FaultRule, RouteKind

    h = token_service
    await h.sim.register_code("code-down", "u-down", REDIRECT)
    h.secrets.add("code-down")
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], fail_next=1, status=503))
    response = await h.api(
        "POST",
        "/oauth/exchange",
        json={"user_id": "u-down", "code": "code-down", "redirect_uri": REDIRECT},
    )
    assert response.status_code == 502
    assert "try again" in response.json()["detail"]
    # Wrong client credentials are this service's problem, not the caller's code.
    await h.sim.register_client(CLIENT_ID, "rotated-elsewhere")
    response = await h.api(
        "POST",
        "/oauth/exchange",
        json={"user_id": "u-down", "code": "code-down", "redirect_uri": REDIRECT},
    )
    assert response.status_code == 502
    assert "client credentials" in response.json()["detail"]


async def test_stored_refresh_token_is_refreshed_at_once(token_service: TokenHarness) -> None:
    h = token_service
    refresh_token = await h.sim_user("user-admin")
    response = await h.api("PUT", "/tokens/user-admin", json={"refresh_token": refresh_token})
    assert response.status_code == 201, response.text
    assert refresh_token not in response.text

    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "user-admin")))
    view = (await h.api("GET", "/tokens/user-admin")).json()
    assert view["status"] == "ACTIVE"
    assert view["last_refreshed_at"] is not None
    assert view["refresh_requested"] is False
    assert await h.lwa_calls() == 1

    # Replacing it answers 200; listing and the summary see the user.
    again = await h.api("PUT", "/tokens/user-admin", json={"refresh_token": refresh_token})
    assert again.status_code == 200
    listing = (await h.api("GET", "/tokens", params={"status": "ACTIVE"})).json()
    assert [t["user_id"] for t in listing["items"]] == ["user-admin"]
    summary = (await h.api("GET", "/tokens/summary")).json()
    assert summary["total"] == 1
    assert summary["under_old_key"] == 0


async def test_inspection_errors_are_clear(token_service: TokenHarness) -> None:
    h = token_service
    missing = await h.api("GET", "/tokens/nobody")
    assert missing.status_code == 404
    assert "no token is registered for user 'nobody'" in missing.json()["detail"]
    bad_status = await h.api("GET", "/tokens", params={"status": "EXPIRED"})
    assert bad_status.status_code == 422
    assert "status" in bad_status.text
    empty = await h.api("PUT", "/tokens/u2", json={"refresh_token": ""})
    assert empty.status_code == 422
    assert "refresh_token" in empty.text
    assert (await h.api("DELETE", "/tokens/nobody")).status_code == 404
    await h.seed("u-del", "Atzr|to-delete")
    assert (await h.api("DELETE", "/tokens/u-del")).status_code == 204
    assert (await h.api("GET", "/tokens/u-del")).status_code == 404


async def _refreshed(h: TokenHarness, topic: str, user: str) -> None:
    async with h.reader() as reader:
        await reader.wait_for(lambda records: bool(refreshed_for(records, topic, user)))


async def test_each_user_is_refreshed_at_the_lwa_host_of_their_region(
    token_service: TokenHarness,
) -> None:
    # Amazon's retrieve-access-token guide: a token URL per region (NA api.amazon.com, EU
    # api.amazon.co.uk, FE api.amazon.co.jp). Before, every user got NA's.
    h = token_service
    topic = h.topic(TokenRefreshed.topic)
    for user, region in (("user-na", None), ("user-eu", "EU"), ("user-fe", "FE")):
        body = {"refresh_token": await h.sim_user(user)}
        if region is not None:
            body["region"] = region
        response = await h.api("PUT", f"/tokens/{user}", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["region"] == (region or "NA")
        await _refreshed(h, topic, user)
    paths = [r.path for r in await h.sim.requests(kind=RouteKind.TOKEN)]
    assert paths == ["/auth/o2/token", "/lwa/eu/auth/o2/token", "/lwa/fe/auth/o2/token"]
    refused = await h.api("PUT", "/tokens/user-xx", json={"refresh_token": "x", "region": "US"})
    assert refused.status_code == 422
    assert "region" in refused.text


async def test_a_code_is_exchanged_at_the_lwa_host_of_its_region(
    token_service: TokenHarness,
) -> None:
    h = token_service
    h.secrets.add("code-eu-1")
    await h.sim.register_code("code-eu-1", "user-web-eu", REDIRECT)
    response = await h.api(
        "POST",
        "/oauth/exchange",
        json={
            "user_id": "user-web-eu",
            "code": "code-eu-1",
            "redirect_uri": REDIRECT,
            "region": "EU",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["region"] == "EU"
    [exchange] = await h.sim.requests(kind=RouteKind.TOKEN)
    assert exchange.path == "/lwa/eu/auth/o2/token"
    row = await h.pool.fetchrow("SELECT lwa_region FROM tokens WHERE user_id = 'user-web-eu'")
    assert row["lwa_region"] == "EU"  # where its refreshes go
