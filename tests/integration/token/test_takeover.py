"""A refresh claim stays its replica's while it lives and is taken over as soon as it dies.

Replica A is a process that claims a token and hangs in a slow LWA call; while it lives,
replica B cannot take the token. Killed with SIGKILL, A's database session ends and with it
its owner lock (shared/ownership.py): B refreshes the token, once, long before A's claim
would have run out. With a short lease, a live A renews its claim across several leases: the
lease is the fallback for an owner whose lock outlives its work, so it must not lapse while
the work goes on.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import Any

import pytest

from amclocal.ports import free_port
from amclocal.simulator import FaultRule, RouteKind
from tests.integration.token.harness import CLIENT_ID, CLIENT_SECRET, TokenHarness, wait_until
from tests.support.processes import service_env, service_process

# Far longer than the test: a takeover can only come from the owner lock.
LONG_LEASE_S = 600.0


# Short enough that the test outlives several: a claim held past them was renewed.
SHORT_LEASE_S = 2.0


def replica_a_env(
    h: TokenHarness, uid: str, database_url: str, bootstrap: str, lease_s: float = LONG_LEASE_S
) -> dict[str, str]:
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
        claim_lease_s=str(lease_s),
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
async def test_a_killed_replicas_claim_is_taken_over_before_it_runs_out(
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

        async def a_calling_lwa() -> bool:
            return await h.lwa_calls() == 1

        await wait_until(a_calling_lwa, timeout_s=60, what="replica A's call to LWA")
        held = await _row(h, "u1")
        assert held["claim_key"] is not None
        # A lives: B cannot take the token, and the claim stays A's.
        assert (await h.service.refresher.run_cycle()).claimed == 0
        still = await _row(h, "u1")
        assert (still["claim_id"], still["claim_key"]) == (held["claim_id"], held["claim_key"])
        assert (await h.api("GET", "/tokens/u1")).json()["claimed_by"] == held["claimed_by"]

        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_at = time.monotonic()
    await h.sim.clear_faults()

    async def shown_free() -> bool:
        return (await h.api("GET", "/tokens/u1")).json()["claimed_by"] is None

    # Before anyone takes it over, and far inside A's lease: the API no longer names A.
    await wait_until(shown_free, timeout_s=30, what="the API to stop naming dead replica A")
    assert (await _row(h, "u1"))["claim_id"] == held["claim_id"]

    refreshed = 0
    while not refreshed:
        refreshed = (await h.service.refresher.run_cycle()).refreshed
        # Only A's ended session can free the claim before its lease runs out.
        assert time.monotonic() - killed_at < LONG_LEASE_S, "B never took the token over"
        await asyncio.sleep(0.1)

    row = await _row(h, "u1")
    assert row["claimed_by"] is None
    assert row["expires_at"] > row["db_now"] + timedelta(minutes=30)  # B's refresh is stored
    # A's hung call and B's: the token was refreshed (stored) once, by B.
    assert await h.lwa_calls() == 2
    assert (await h.service.refresher.run_cycle()).claimed == 0


@pytest.mark.slow
async def test_a_live_replica_renews_its_claim_across_several_leases(
    token_service: TokenHarness, uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    h = token_service
    await h.seed("u1", await h.sim_user("u1"), expires_in=timedelta(seconds=30))
    await h.sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=60_000))
    env = replica_a_env(h, uid, database_url, kafka_bootstrap, lease_s=SHORT_LEASE_S)
    with service_process("token", env) as a:

        async def a_calling_lwa() -> bool:
            claimed_by = (await _row(h, "u1"))["claimed_by"]
            mine = claimed_by is not None and claimed_by.endswith(f":{a.pid}")
            return mine and await h.lwa_calls() == 1

        await wait_until(a_calling_lwa, timeout_s=60, what="replica A's claim and LWA call")
        held = await _row(h, "u1")
        await asyncio.sleep(3 * SHORT_LEASE_S)
        still = await _row(h, "u1")
        # The same claim, still in force three leases later, and moved forward since.
        assert still["claim_id"] == held["claim_id"]
        assert still["claim_expires_at"] > still["db_now"]
        assert still["claim_expires_at"] > held["claim_expires_at"]
        assert (await h.service.refresher.run_cycle()).claimed == 0
        a.send_signal(signal.SIGKILL)
        a.wait()
    await h.sim.clear_faults()
