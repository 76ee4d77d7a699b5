"""One drain of due tokens as a pipeline: LWA calls, claims and stores overlap.

A drain keeps `concurrency` LWA calls in flight from its first claim until nothing is left to
claim: a call that ends is replaced at once from rows claimed ahead, rather than a wave of
calls waiting for its slowest before the next claim. One loop drives three kinds of work and
waits on none of them alone:

- calls: one task per claimed row (decrypt, LWA, encrypt), `concurrency` at a time;
- the next claim, one statement for many rows, taken while the calls run as soon as a
  quarter of the window (calls in flight plus rows claimed ahead, 1.5 x concurrency) is
  missing; rows claimed ahead start within about one call's time;
- the storing of finished refreshes, one transaction for all that finished since the last
  one, while the calls go on. A refresh waits for a quarter of the concurrency to finish
  with it, or stores at once when fewer calls are left than refreshes waiting.

A claim stays held (its lease renewed) from the claim until its outcome is stored.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.token import store
from services.token.store import Claimed
from shared.contract import TokenRefreshed
from shared.leases import LeaseKeeper


@dataclass(frozen=True)
class CycleResult:
    claimed: int = 0
    refreshed: int = 0
    reauth_required: int = 0
    failed: int = 0
    lost_claims: int = 0

    def __add__(self, other: CycleResult) -> CycleResult:
        return CycleResult(
            self.claimed + other.claimed,
            self.refreshed + other.refreshed,
            self.reauth_required + other.reauth_required,
            self.failed + other.failed,
            self.lost_claims + other.lost_claims,
        )


@dataclass(frozen=True)
class Refreshed:
    """A successful LWA answer, already encrypted, waiting to be stored with others."""

    grant: store.Grant
    event: TokenRefreshed
    trace_context: dict[str, str]


Outcome = CycleResult | Refreshed  # a failure already recorded, or a refresh to store
Key = tuple[str, UUID]  # (user id, claim id): what a lease is renewed by


def key(claim: Claimed) -> Key:
    return (claim.user_id, claim.claim_id)


@dataclass
class Drain:
    """Claim, refresh and store until nothing is left; `run` returns the totals."""

    concurrency: int
    claim: Callable[[int], Coroutine[Any, Any, list[Claimed]]]
    refresh: Callable[[Claimed], Coroutine[Any, Any, Outcome]]
    store: Callable[[list[Refreshed]], Coroutine[Any, Any, CycleResult]]
    leases: LeaseKeeper[Key]

    async def run(self) -> CycleResult:
        limit = self.concurrency
        window = limit + max(1, limit // 2)  # calls in flight plus rows claimed ahead
        step = max(1, limit // 4)
        calls: dict[asyncio.Task[Outcome], Claimed] = {}
        ahead: deque[Claimed] = deque()
        fresh: list[Refreshed] = []
        claiming: asyncio.Task[list[Claimed]] | None = None
        asked = 0
        storing: asyncio.Task[CycleResult] | None = None
        in_store: list[Refreshed] = []
        exhausted = False
        total = CycleResult()
        try:
            while True:
                while ahead and len(calls) < limit:
                    row = ahead.popleft()
                    calls[asyncio.create_task(self.refresh(row))] = row
                missing = window - len(calls) - len(ahead)
                if not exhausted and claiming is None and missing >= step:
                    claiming, asked = asyncio.create_task(self.claim(missing)), missing
                if storing is None and fresh and (len(fresh) >= step or len(fresh) > len(calls)):
                    in_store, fresh = fresh, []
                    storing = asyncio.create_task(self.store(in_store))
                busy: set[asyncio.Task[Any]] = {*calls, *(t for t in (claiming, storing) if t)}
                if not busy:
                    return total
                done, _ = await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)
                if claiming is not None and claiming in done:
                    claimed, claiming = claiming.result(), None
                    exhausted = len(claimed) < asked
                    total += CycleResult(claimed=len(claimed))
                    for row in claimed:
                        self.leases.hold(key(row))
                    ahead.extend(claimed)
                if storing is not None and storing in done:
                    total += storing.result()
                    storing = None
                    # Renewed until stored: only now may another replica have these rows.
                    self.leases.release_all(key(r.grant.claim) for r in in_store)
                    in_store = []
                for task in [t for t in calls if t in done]:
                    row = calls.pop(task)
                    outcome = task.result()
                    if isinstance(outcome, Refreshed):
                        fresh.append(outcome)
                    else:  # a failure is recorded by the call itself
                        total += outcome
                        self.leases.release(key(row))
        finally:
            # Cancelled (shutdown) or failed: let the calls in flight finish and store what
            # they got, so a refresh token that LWA just replaced is never lost. Rows claimed
            # ahead and not started simply expire.
            if claiming is not None:
                claiming.cancel()
            if storing is not None:
                await asyncio.gather(storing, return_exceptions=True)
            if calls:
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
                fresh += [o for o in outcomes if isinstance(o, Refreshed)]
                for failed in outcomes:
                    if isinstance(failed, CycleResult):
                        total += failed
            if fresh:
                total += await self.store(fresh)
