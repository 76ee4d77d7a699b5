"""A refresh claim is renewed while its replica lives and taken over soon after it dies.

Replica A is a process that claims a token and hangs in a slow LWA call; while it lives, its
claim outlasts several leases and replica B cannot take the token. Killed with SIGKILL, A's
claim runs out within one lease (it used to be 120 s) and B refreshes the token, once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import Any

import pytest

from amclocal.broker import free_port
from amclocal.simulator import FaultRule, RouteKind
from tests.integration.token.harness import CLIENT_ID, CLIENT_SECRET, TokenHarness, wait_until
from tests.support.processes import service_env, service_process

LEASE_S = 2.0
OLD_LEASE_S = 120.0  # TOKEN_CLAIM_LEASE_S before claims were renewed


def replica_a_env(h: TokenHarness, uid: str, database_url: str, bootstrap: str) -> dict[str, str]:
    s = h.settings
    return service_env(
        "token",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        http_port=str(free_port()),
        lwa_base_url=s.lwa_base_url,
        lwa_client_id=CLIENT_ID,
        lwa_client_secret=CLIENT_SECRET,
        lwa_timeout_s="60",
        encryption_keys=s.encryption_keys.get_secret_value(),
        event_encryption_keys=s.event_encryption_keys.get_secret_value(),
        claim_lease_s=str(LEASE_S),  # renewed every LEASE_S / 4
        refresh_initial_delay_s="0",  # a proactive cycle at start: it claims the token
        refresh_interval_s="3600",
    )


async def _row(h: TokenHarness, user_id: str) -> dict[str, Any]:
    record = await h.pool.fetchrow(
        "SELECT *, now() AS db_now FROM tokens WHERE user_id = $1", user_id
    )
    assert record is not None
    return dict(record)


@pytest.mark.slow
async def test_a_killed_replicas_claim_is_taken_over_within_a_lease(
    token_service: TokenHarness, uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    h = token_service
    await h.seed("u1", await h.sim_user("u1"), expires_in=timedelta(seconds=30))
    # A's call to LWA hangs far longer than its lease (the delay is fixed when it arrives).
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=60_000))
    with service_process("token", replica_a_env(h, uid, database_url, kafka_bootstrap)) as a:

        async def claimed_by_a() -> bool:
            claimed_by = (await _row(h, "u1"))["claimed_by"]
            return claimed_by is not None and claimed_by.endswith(f":{a.pid}")

        await wait_until(claimed_by_a, timeout_s=60, what="replica A to claim the token")
        held = await _row(h, "u1")
        await asyncio.sleep(3 * LEASE_S)
        still = await _row(h, "u1")
        # Renewed: the same claim, still in force after three leases; B cannot take it.
        assert still["claim_id"] == held["claim_id"]
        assert still["claim_expires_at"] > still["db_now"]
        assert (await h.service.refresher.run_cycle()).claimed == 0

        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_at = time.monotonic()
    await h.sim.clear_faults()

    refreshed = 0
    while not refreshed:
        refreshed = (await h.service.refresher.run_cycle()).refreshed
        assert time.monotonic() - killed_at < OLD_LEASE_S, "B never took the token over"
        await asyncio.sleep(0.1)
    taken_over_after = time.monotonic() - killed_at
    # A's last renewal ran out within one lease; B's cycle and LWA call add well under 5 s.
    bound = LEASE_S + 5.0
    assert taken_over_after < bound < OLD_LEASE_S, taken_over_after

    row = await _row(h, "u1")
    assert row["claimed_by"] is None
    assert row["expires_at"] > row["db_now"] + timedelta(minutes=30)  # B's refresh is stored
    # A's hung call and B's: the token was refreshed (stored) once, by B.
    assert await h.lwa_calls() == 2
    assert (await h.service.refresher.run_cycle()).claimed == 0
