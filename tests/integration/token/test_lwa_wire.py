"""The token service's LWA path over aiohttp (lwa_wire.py) against the simulator: it answers
with the same tokens and the same typed errors as LwaClient (tests/integration/
test_clients_lwa.py), and no secret it sent shows in an error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from amclocal.ports import free_port
from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl
from services.token.lwa_pool import LwaPool
from services.token.lwa_wire import LwaGrant, LwaWire
from shared.clients import InvalidGrantError, ServerError, TransportError, UnauthorizedError
from shared.clients.lwa import LwaRegion

REDIRECT_URI = "https://app.example.com/oauth/callback"


@pytest_asyncio.fixture(loop_scope="session")
async def wire() -> AsyncIterator[LwaWire]:
    wire = LwaWire(4)
    yield wire
    await wire.aclose()


def grant(wire: LwaWire, url: str, account: SimAccount, timeout: float = 2.0) -> LwaGrant:
    return LwaGrant(wire, url, account.client_id, account.client_secret, timeout)


async def test_refresh_and_code_exchange(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount
) -> None:
    lwa = grant(wire, simulator.base_url, sim_account)
    tokens = await lwa.refresh(sim_account.refresh_token)
    assert tokens.access_token.get_secret_value().startswith("Atza|")
    # The simulator does not rotate: its answer names the same refresh token.
    assert tokens.refresh_token.get_secret_value() == sim_account.refresh_token
    assert tokens.expires_in == 3600
    [record] = await simulator.requests(kind=RouteKind.TOKEN)
    assert (record.method, record.path, record.status) == ("POST", "/auth/o2/token", 200)

    await simulator.register_code("code-123", "user-2", REDIRECT_URI)
    exchanged = await lwa.exchange_code("code-123", REDIRECT_URI)
    assert exchanged.refresh_token.get_secret_value().startswith("Atzr|")
    with pytest.raises(InvalidGrantError) as caught:
        await lwa.exchange_code("code-123", REDIRECT_URI)
    assert (caught.value.status, caught.value.code) == (400, "invalid_grant")


async def test_revoked_user_must_reauthorize(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.revoke_user(sim_account.user_id)
    with pytest.raises(InvalidGrantError) as caught:
        await grant(wire, simulator.base_url, sim_account).refresh(sim_account.refresh_token)
    assert caught.value.code == "invalid_grant"
    assert sim_account.refresh_token not in str(caught.value)


async def test_wrong_client_secret_is_unauthorized_and_redacted(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount
) -> None:
    lwa = LwaGrant(wire, simulator.base_url, sim_account.client_id, "not-the-secret", 2.0)
    with pytest.raises(UnauthorizedError) as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert (caught.value.status, caught.value.code) == (401, "invalid_client")
    assert "not-the-secret" not in str(caught.value)
    assert sim_account.refresh_token not in str(caught.value)


async def test_outage_is_a_server_error(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.TOKEN], fail_next=1))
    lwa = grant(wire, simulator.base_url, sim_account)
    with pytest.raises(ServerError) as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert caught.value.status == 503
    assert (await lwa.refresh(sim_account.refresh_token)).access_token


async def test_slow_lwa_times_out_as_a_transport_error(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=600))
    lwa = grant(wire, simulator.base_url, sim_account, timeout=0.2)
    with pytest.raises(TransportError, match="timed out") as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert caught.value.status is None


async def test_unreachable_lwa_is_a_transport_error(wire: LwaWire, sim_account: SimAccount) -> None:
    lwa = grant(wire, f"http://127.0.0.1:{free_port()}", sim_account)
    with pytest.raises(TransportError, match="request failed") as caught:
        await lwa.refresh(sim_account.refresh_token)
    assert sim_account.refresh_token not in str(caught.value)
    assert sim_account.client_secret not in str(caught.value)


async def test_pool_reopens_after_close(simulator: SimControl, sim_account: SimAccount) -> None:
    # A runtime stop closes the pool's connections; a later start calls through it again.
    urls = dict.fromkeys(LwaRegion, simulator.base_url)
    pool = LwaPool(
        urls, sim_account.client_id, sim_account.client_secret, concurrency=2, timeout=2.0
    )
    assert (await pool.refresh(sim_account.refresh_token)).access_token
    await pool.aclose()
    assert (await pool.refresh(sim_account.refresh_token, LwaRegion.EU)).access_token
    await pool.aclose()


async def test_the_environments_proxy_is_used_unless_no_proxy_exempts_the_host(
    wire: LwaWire, simulator: SimControl, sim_account: SimAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As httpx did: a pod behind an egress proxy reaches LWA through it."""
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(TransportError):
        await grant(wire, simulator.base_url, sim_account).refresh(sim_account.refresh_token)

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    tokens = await grant(wire, simulator.base_url, sim_account).refresh(sim_account.refresh_token)
    assert tokens.access_token.get_secret_value().startswith("Atza|")
