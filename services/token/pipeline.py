"""One drain of due tokens as a pipeline: LWA calls, claims and stores overlap.

A drain keeps `concurrency` LWA calls in flight from its first claim until nothing is left to
claim: a call that ends is replaced at once from rows claimed ahead, rather than a wave of
calls waiting for its slowest before the next claim. Three kinds of work overlap, and
whatever ends decides at once what starts next (`go_on`):

- calls (decrypt, LWA, encrypt), `concurrency` at a time, each worker taking the next
  claimed row as its call ends;
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
        ahead: deque[Claimed] = deque()
        fresh: list[Refreshed] = []
        calls = 0  # in flight
        workers: set[asyncio.Task[None]] = set()
        claiming: asyncio.Task[list[Claimed]] | None = None
        asked = 0
        storing: asyncio.Task[CycleResult] | None = None
        in_store: list[Refreshed] = []
        exhausted = stopping = False
        total = CycleResult()
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def fail(exc: BaseException) -> None:
            # Once stopping, the drain is ending anyway and no one awaits `finished`.
            if not stopping and not finished.done():
                finished.set_exception(exc)

        def go_on() -> None:
            """Start what the state calls for; decided at once by whatever changed it (a
            call's end, a claim, a store), not on a later turn of a loop that waits."""
            nonlocal claiming, asked, storing, in_store, fresh, calls
            if stopping or finished.done():
                return
            for _ in range(min(limit - len(workers), len(ahead))):
                calls += 1  # counted as it is taken: a claim decided now must see it
                worker = asyncio.create_task(work(ahead.popleft()))
                worker.add_done_callback(worker_ended)
                workers.add(worker)
            missing = window - calls - len(ahead)
            if not exhausted and claiming is None and missing >= step:
                claiming, asked = asyncio.create_task(self.claim(missing)), missing
                claiming.add_done_callback(claimed)
            if storing is None and fresh and (len(fresh) >= step or len(fresh) > calls):
                in_store, fresh = fresh, []
                storing = asyncio.create_task(self.store(in_store))
                storing.add_done_callback(stored)
            if not workers and claiming is None and storing is None:
                finished.set_result(None)

        async def work(row: Claimed) -> None:
            # A worker takes the next row as soon as its call ends: on a busy event loop,
            # a new task per row waited for about a millisecond of scheduling each.
            nonlocal calls, total
            while True:
                try:
                    outcome = await self.refresh(row)
                finally:
                    calls -= 1
                if isinstance(outcome, Refreshed):
                    fresh.append(outcome)
                else:  # a failure is recorded by the call itself
                    total += outcome
                    self.leases.release(key(row))
                go_on()
                if stopping or not ahead:
                    return
                row = ahead.popleft()
                calls += 1

        def succeeded(task: asyncio.Task[Any]) -> bool:
            """Whether `task` returned; what it raised fails the drain."""
            if task.cancelled():
                return False
            if (error := task.exception()) is not None:
                fail(error)
                return False
            return True

        def worker_ended(worker: asyncio.Task[None]) -> None:
            workers.discard(worker)
            succeeded(worker)
            go_on()

        def claimed(task: asyncio.Task[list[Claimed]]) -> None:
            nonlocal claiming, exhausted, total
            claiming = None
            if not succeeded(task):
                return
            rows = task.result()
            exhausted = len(rows) < asked
            total += CycleResult(claimed=len(rows))
            for row in rows:
                self.leases.hold(key(row))
            ahead.extend(rows)
            go_on()

        def stored(task: asyncio.Task[CycleResult]) -> None:
            nonlocal storing, in_store, total
            storing = None
            if not succeeded(task):
                return
            total += task.result()
            # Renewed until stored: only now may another replica have these rows.
            self.leases.release_all(key(r.grant.claim) for r in in_store)
            in_store = []
            go_on()

        try:
            go_on()
            await finished
            return total
        finally:
            # Cancelled (shutdown) or failed: let the calls in flight finish and store what
            # they got, so a refresh token that LWA just replaced is never lost. Rows claimed
            # ahead and not started simply expire.
            stopping = True
            if claiming is not None:
                claiming.cancel()
            if storing is not None:
                await asyncio.gather(storing, return_exceptions=True)
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
            if fresh:
                total += await self.store(fresh)
