"""Rows stay their owner's while it lives and are taken over as soon as it dies.

A replica's rows stay its own for as long as it works on them, however much longer than
the lease that is; a replica killed with SIGKILL gives them up as its database session ends
(its owner lock, shared/ownership.py), long before its lease would run out, and the other
replica finishes the work exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amclocal.simulator import FaultRule, RouteKind, SimAccount, SimControl
from shared.contract import TokenRefreshed, Topics
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.poller.conftest import (
    PollerFactory,
    SettingsFactory,
    eventually,
    external,
    lwa_token,
    run_for,
    wait_token_stored,
)
from tests.integration.poller.test_crash import ROOT, subprocess_env
from tests.support.kafka import produce

# Far longer than the test: a takeover can only come from the owner lock.
LONG_LEASE_S = 600.0


def pid_of(owner: str) -> int:
    """The process id inside a lease owner ("host:pid:random")."""
    return int(owner.split(":")[-2])


async def _row(pool: Any) -> dict[str, Any]:
    [record] = await pool.fetch("SELECT *, now() AS db_now FROM executions")
    return dict(record)


@pytest.mark.slow
async def test_a_killed_replicas_submission_is_taken_over_before_its_lease_ends(
    poller_settings: SettingsFactory,
    make_poller: PollerFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    key_text: str,
    tmp_path: Path,
) -> None:
    settings = poller_settings(lease_s=LONG_LEASE_S)
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka.bootstrap_servers, contract_topics(topics))
    env = subprocess_env(settings, key_text)
    env["POLLER_LEASE_S"] = str(LONG_LEASE_S)
    log = (tmp_path / "replica-a.log").open("wb")
    # Replica A posts to AMC, then sleeps holding the row's lease (the test pause hook).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.poller", env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        token = await lwa_token(simulator.base_url, sim_account)
        refreshed = TokenRefreshed(
            user_id=sim_account.user_id,
            access_token_encrypted=KeyRing([key_text]).encrypt(token),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        bootstrap, prefix = settings.kafka.bootstrap_servers, settings.kafka.topic_prefix
        await produce(
            bootstrap, prefix + refreshed.topic, [refreshed.to_bytes()], key=refreshed.key()
        )
        await wait_token_stored(settings, sim_account.user_id)
        request = external(run_for(sim_account))
        await produce(bootstrap, prefix + request.topic, [request.to_bytes()], key=request.key())

        async def accepted() -> bool:
            creates = await simulator.requests(kind=RouteKind.CREATE)
            return any(r.status == 200 for r in creates)

        await eventually(accepted, timeout_s=60, what="AMC to accept replica A's POST")
        # Replica B runs beside A from now on.
        b = await make_poller(lease_s=LONG_LEASE_S)
        held = await _row(b.runtime.pool)
        assert held["status"] == "SUBMITTING"
        assert pid_of(held["lease_owner"]) == proc.pid
        assert held["lease_key"] is not None

        # A lives on (B's claim loop runs every 0.5 s): the row stays A's; B leaves it alone.
        await asyncio.sleep(2.0)
        still = await _row(b.runtime.pool)
        assert still["lease_owner"] == held["lease_owner"]
        assert still["lease_key"] == held["lease_key"]
        assert still["status"] == "SUBMITTING"
        assert still["amc_execution_id"] is None

        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        log.close()

    async def recorded() -> bool:
        row = await _row(b.runtime.pool)
        return row["amc_execution_id"] is not None

    # Well inside A's lease: only A's ended session can have freed the row.
    await eventually(recorded, timeout_s=60, what="replica B to reconcile A's POST")

    rows = await b.wait_terminal(1, timeout_s=60)
    assert rows[0]["status"] == "SUCCEEDED"
    [amc_execution] = await simulator.executions()
    assert rows[0]["amc_execution_id"] == amc_execution.execution_id
    assert len(await simulator.requests(kind=RouteKind.CREATE)) == 1  # exactly once at AMC


@pytest.mark.slow
async def test_a_status_poll_longer_than_the_lease_keeps_its_row(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await make_poller(lease_s=1.0)  # renewed every 0.25 s
    await poller.give_token(sim_account.user_id, await lwa_token(simulator.base_url, sim_account))
    await eventually(lambda: poller.has_token(sim_account.user_id), 30, "the token")
    # Every status poll hangs for six leases.
    await simulator.add_fault(FaultRule(kinds=[RouteKind.GET], latency_ms=6000))
    await poller.send(external(run_for(sim_account)))

    async def polling() -> dict[str, Any] | None:
        rows = await poller.rows()
        if rows and rows[0]["stage"] == "poll" and rows[0]["lease_owner"] is not None:
            return rows[0]
        return None

    claimed = await eventually(polling, 30, "a status poll to start")
    await asyncio.sleep(3.0)
    now = await _row(poller.runtime.pool)
    # The same claim (a new one would have changed updated_at), renewed past its first lease.
    assert now["updated_at"] == claimed["updated_at"]
    assert now["lease_owner"] == claimed["lease_owner"]
    assert now["lease_until"] > now["db_now"]
    # One poll in flight: without renewal the row would have been claimed and polled again.
    assert len(await simulator.requests(kind=RouteKind.GET)) == 1

    await simulator.clear_faults()
    rows = await poller.wait_terminal(1, timeout_s=60)
    assert rows[0]["status"] == "SUCCEEDED"
