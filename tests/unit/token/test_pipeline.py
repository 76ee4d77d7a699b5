"""The refresh drain's pipeline: calls keep going while claims and stores run, every claim
is held until its outcome is stored, and calls in flight at a shutdown are still stored."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.token.pipeline import CycleResult, Drain, Key, Outcome, Refreshed, key
from services.token.store import Claimed, Grant
from shared.contract import TokenRefreshed
from shared.leases import LeaseKeeper

# A guard against a pipeline that waits on itself (the test would hang), not a timing check.
DEADLOCK_GUARD_S = 30.0


def row(n: int) -> Claimed:
    return Claimed(f"user-{n}", uuid.uuid4(), "sealed", 0, False)


def refreshed(claim: Claimed) -> Refreshed:
    now = datetime.now(UTC)
    event = TokenRefreshed(
        user_id=claim.user_id, access_token_encrypted="sealed", expires_at=now, issued_at=now
    )
    return Refreshed(Grant(claim, "sealed", "sealed", now), event, {})


@dataclass
class Fake:
    """Rows to claim, LWA calls and stores, each observable and each able to be held up."""

    rows: list[Claimed]
    fail: set[str] = field(default_factory=set)
    in_flight: int = 0
    most_in_flight: int = 0
    started: int = 0
    in_flight_at_claims: list[int] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    held_at_store: list[bool] = field(default_factory=list)
    call_gate: asyncio.Event = field(default_factory=asyncio.Event)
    store_gate: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    leases: LeaseKeeper[Key] = field(init=False)

    def __post_init__(self) -> None:
        async def renew(keys: Sequence[Key]) -> int:
            return len(keys)

        self.leases = LeaseKeeper("test claims", renew, 3600.0)
        self.call_gate.set()
        self.store_gate.set()

    async def claim(self, n: int) -> list[Claimed]:
        self.in_flight_at_claims.append(self.in_flight)
        taken, self.rows = self.rows[:n], self.rows[n:]
        return taken

    async def refresh(self, claim: Claimed) -> Outcome:
        self.in_flight += 1
        self.started += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        async with self.progress:
            self.progress.notify_all()
        try:
            await self.call_gate.wait()
            await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        if claim.user_id in self.fail:
            return CycleResult(failed=1)
        return refreshed(claim)

    async def store(self, fresh: list[Refreshed]) -> CycleResult:
        await self.store_gate.wait()
        held = set(self.leases.held)
        self.held_at_store += [key(r.grant.claim) in held for r in fresh]
        self.stored += [r.event.user_id for r in fresh]
        return CycleResult(refreshed=len(fresh))

    def drain(self, concurrency: int) -> Drain:
        return Drain(concurrency, self.claim, self.refresh, self.store, self.leases)

    async def until_started(self, n: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.started >= n)


async def test_every_row_is_refreshed_once_and_stored_while_its_claim_is_held() -> None:
    fake = Fake([row(n) for n in range(100)], fail={"user-7", "user-50"})
    result = await asyncio.wait_for(fake.drain(8).run(), DEADLOCK_GUARD_S)
    assert result == CycleResult(claimed=100, refreshed=98, failed=2)
    assert sorted(fake.stored) == sorted(f"user-{n}" for n in range(100) if n not in (7, 50))
    assert all(fake.held_at_store)
    assert fake.leases.held == [], "every claim is released once its outcome is recorded"
    assert fake.most_in_flight == 8


async def test_calls_go_on_while_a_store_is_under_way() -> None:
    fake = Fake([row(n) for n in range(60)])
    fake.store_gate.clear()
    drain = asyncio.create_task(fake.drain(4).run())
    # The first store is held up; calls must keep starting until only the rows that wait
    # for it are left: a drain that waited for its stores would never get this far.
    await asyncio.wait_for(fake.until_started(60), DEADLOCK_GUARD_S)
    fake.store_gate.set()
    result = await asyncio.wait_for(drain, DEADLOCK_GUARD_S)
    assert (result.claimed, result.refreshed) == (60, 60)
    assert fake.most_in_flight == 4


async def test_rows_are_claimed_while_calls_run() -> None:
    fake = Fake([row(n) for n in range(200)])
    result = await asyncio.wait_for(fake.drain(20).run(), DEADLOCK_GUARD_S)
    assert result.refreshed == 200
    first, *later = fake.in_flight_at_claims
    assert first == 0
    # After the first claim, the next rows are claimed before the calls run dry.
    assert later
    assert all(n > 0 for n in later[:-1]), fake.in_flight_at_claims


async def test_calls_in_flight_at_a_shutdown_are_still_stored() -> None:
    fake = Fake([row(n) for n in range(30)])
    fake.call_gate.clear()
    drain = asyncio.create_task(fake.drain(5).run())
    await asyncio.wait_for(fake.until_started(5), DEADLOCK_GUARD_S)
    drain.cancel()
    await asyncio.sleep(0)
    fake.call_gate.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(drain, DEADLOCK_GUARD_S)
    # The five calls LWA answered are stored; the rows claimed ahead were never started.
    assert sorted(fake.stored) == sorted(f"user-{n}" for n in range(5))
    assert fake.started == 5
