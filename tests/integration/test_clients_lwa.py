"""LwaClient against the simulator over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl
from shared.clients import (
    InvalidGrantError,
    LwaClient,
    ServerError,
    TransportError,
    UnauthorizedError,
)

REDIRECT_URI = "https://app.example.com/oauth/callback"


@pytest.fixture
def lwa(simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient) -> LwaClient:
    return LwaClient(
        simulator.base_url,
        sim_account.client_id,
        sim_account.client_secret,
        http=sim_http,
        timeout=2.0,
    )


async def test_refresh_grants_an_access_token_valid_for_an_hour(
    lwa: LwaClient, sim_account: SimAccount, simulator: SimControl
) -> None:
    tokens = await lwa.refresh(sim_account.refresh_token)

    assert tokens.access_token.get_secret_value().startswith("Atza|")
    assert tokens.refresh_token.get_secret_value() == sim_account.refresh_token
    assert tokens.expires_in == 3600
    now = datetime.now(UTC)
    assert tokens.expires_at(now) == now + timedelta(hours=1)
    [record] = await simulator.requests(kind=RouteKind.TOKEN)
    assert (record.method, record.path, record.status) == ("POST", "/auth/o2/token", 200)


async def test_each_refresh_gives_a_new_access_token(
    lwa: LwaClient, sim_account: SimAccount
) -> None:
    first = await lwa.refresh(sim_account.refresh_token)
    second = await lwa.refresh(sim_account.refresh_token)
    assert first.access_token != second.access_token


async def test_rotated_refresh_token_replaces_the_old_one(
    lwa: LwaClient, sim_account: SimAccount, simulator: SimControl
) -> None:
    await simulator.configure(rotate_refresh_tokens=True)

    tokens = await lwa.refresh(sim_account.refresh_token)
    rotated = tokens.refresh_token.get_secret_value()

    assert rotated != sim_account.refresh_token
    with pytest.raises(InvalidGrantError):
        await lwa.refresh(sim_account.refresh_token)
    assert (await lwa.refresh(rotated)).access_token


async def test_authorization_code_exchanges_once(lwa: LwaClient, simulator: SimControl) -> None:
    await simulator.register_code("code-123", "user-2", REDIRECT_URI)

    tokens = await lwa.exchange_code("code-123", REDIRECT_URI)
    assert tokens.refresh_token.get_secret_value().startswith("Atzr|")
    assert (await lwa.refresh(tokens.refresh_token.get_secret_value())).access_token

    with pytest.raises(InvalidGrantError) as caught:
        await lwa.exchange_code("code-123", REDIRECT_URI)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_grant"


async def test_code_with_another_redirect_uri_is_refused(
    lwa: LwaClient, simulator: SimControl
) -> None:
    await simulator.register_code("code-456", "user-2", REDIRECT_URI)
    with pytest.raises(InvalidGrantError, match="redirect_uri"):
        await lwa.exchange_code("code-456", "https://evil.example.com/cb")


async def test_revoked_user_must_reauthorize(
    lwa: LwaClient, sim_account: SimAccount, simulator: SimControl
) -> None:
    await lwa.refresh(sim_account.refresh_token)
    await simulator.revoke_user(sim_account.user_id)

    with pytest.raises(InvalidGrantError) as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert caught.value.code == "invalid_grant"
    assert sim_account.refresh_token not in str(caught.value)


async def test_refresh_token_bound_to_another_client_is_unauthorized_client(
    lwa: LwaClient, simulator: SimControl
) -> None:
    await simulator.register_user("user-3", "Atzr|bound", client_id="another-app")
    with pytest.raises(InvalidGrantError) as caught:
        await lwa.refresh("Atzr|bound")
    assert caught.value.code == "unauthorized_client"


async def test_wrong_client_secret_is_unauthorized(
    simulator: SimControl, sim_account: SimAccount
) -> None:
    # This client owns its connection pool, the way the services use it.
    async with LwaClient(simulator.base_url, sim_account.client_id, "not-the-secret") as lwa:
        with pytest.raises(UnauthorizedError) as caught:
            await lwa.refresh(sim_account.refresh_token)
    error = caught.value
    assert (error.status, error.code) == (401, "invalid_client")
    assert not isinstance(error, InvalidGrantError)
    assert "not-the-secret" not in str(error)
    assert sim_account.refresh_token not in str(error)


async def test_lwa_outage_is_a_server_error(
    lwa: LwaClient, sim_account: SimAccount, simulator: SimControl
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.TOKEN], fail_next=1))

    with pytest.raises(ServerError) as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert caught.value.status == 503
    assert (await lwa.refresh(sim_account.refresh_token)).access_token


async def test_slow_lwa_times_out_as_a_transport_error(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=600))
    lwa = LwaClient(
        simulator.base_url,
        sim_account.client_id,
        sim_account.client_secret,
        http=sim_http,
        timeout=0.2,
    )
    with pytest.raises(TransportError, match="timed out") as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert caught.value.status is None
