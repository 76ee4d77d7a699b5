"""What the background loops share: their context, bounded task sets, and the claim loop.

Loops claim due rows with FOR UPDATE SKIP LOCKED and a short lease (committed at once), then
call AMC outside any transaction, then record the answer in a new transaction that checks the
lease is still theirs. Each claimed row records the replica's owner lock key
(`Context.ownership`, shared/ownership.py): a replica that dies gives its rows up at once, as
its database session ends, whatever call it was in. While a job runs, its row's lease is
renewed (`Context.leases`): the lease frees the rows of a replica that lives but stalls. Any
number of replicas can run these loops side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from opentelemetry.trace import Tracer

from services.poller import flow, store, tracing
from services.poller.exchange import failure_policy
from services.poller.exchange.gateway import AmcGateway, CircuitOpenError
from services.poller.exchange.tokens import TokenReader
from services.poller.instances.directory import InstanceDirectory
from services.poller.results.stores import ResultStore
from services.poller.rows import ExecRow
from services.poller.settings import PollerSettings
from shared.clients import ApiError
from shared.consumer import TRANSIENT_ERRORS
from shared.leases import LeaseKeeper
from shared.outbox import Outbox
from shared.ownership import Claimant, Ownership

log = logging.getLogger(__name__)

# What a job or a loop step may meet in normal operation: logged, and the row retried later.
_EXPECTED: tuple[type[BaseException], ...] = (ApiError, *TRANSIENT_ERRORS, asyncpg.PostgresError)
_DB_TROUBLE: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)


def owner_name() -> str:
    """Who holds a lease: host and process (an operator can tell which replica has a row),
    plus a random part, since a restarted container often gets the same pid again."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Context:
    settings: PollerSettings
    pool: asyncpg.Pool[Any]
    out: flow.Announcer
    amc: AmcGateway
    results: ResultStore
    instances: InstanceDirectory
    tokens: TokenReader
    owner: str = field(default_factory=owner_name)
    rng: random.Random = field(default_factory=random.Random)
    tracer: Tracer = field(default_factory=tracing.tracer)
    leases: LeaseKeeper[UUID] = field(init=False)
    # The replica's owner lock; None (tests of single loops): rows are held by leases alone.
    ownership: Ownership | None = None

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(
            "poller", self._renew_leases, self.settings.lease_renew_interval_s
        )

    async def _renew_leases(self, execution_ids: Sequence[UUID]) -> int:
        async with self.pool.acquire() as conn:
            return await store.renew_leases(conn, execution_ids, self.claimant)

    @property
    def outbox(self) -> Outbox:
        return self.out.outbox

    @property
    def claimant(self) -> Claimant:
        """This replica as its claims and lease renewals name it."""
        return Claimant(self.owner, self.settings.lease_s, self.ownership)

    @property
    def owns(self) -> bool:
        """This replica's view of its owner lock: without it, no outside call is started
        (the database refuses its claims and writes anyway)."""
        return self.ownership is None or self.ownership.held

    async def change(self, row: ExecRow, **fields: Any) -> bool:
        """`flow.change` of a row this replica holds, in a transaction of its own."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await flow.change(conn, self.out, row, self.owner, **fields)

    async def wait_for_token(self, row: ExecRow, reason: str, *, unsent: bool) -> None:
        """`flow.wait_for_token` of a row this replica holds, in a transaction of its own."""
        async with self.pool.acquire() as conn, conn.transaction():
            await flow.wait_for_token(conn, self.out, row, self.owner, reason, unsent=unsent)

    def backoff(self, failures: int) -> timedelta:
        s = self.settings
        return timedelta(
            seconds=failure_policy.backoff_s(failures, s.retry_base_s, s.retry_max_s, self.rng)
        )


class TaskSet:
    """Runs up to `limit` jobs at once; the loop asks how much room is left before claiming.

    Each job runs inside its span "execution <what>", opened in the job's own task and
    continuing the trace stored on its row. With `keep_leases`, the row's lease is renewed
    from spawn until the job ends."""

    def __init__(self, limit: int, name: str, tracer: Tracer | None = None) -> None:
        self.limit = limit
        self.name = name
        self.tracer = tracer or tracing.tracer()
        self.leases: LeaseKeeper[UUID] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def keep_leases(self, leases: LeaseKeeper[UUID]) -> None:
        self.leases = leases

    @property
    def room(self) -> int:
        return self.limit - len(self._tasks)

    def spawn(self, what: str, row: ExecRow, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guard(what, row, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        leases = self.leases
        if leases is not None:
            # Released in a done callback, which runs however the task ends (even cancelled
            # before it started). From then on, a row the job left leased (a deferred retry,
            # an open circuit, a crashed job) is free again when its lease runs out.
            leases.hold(row.execution_id)
            task.add_done_callback(lambda _: leases.release(row.execution_id))

    async def _guard(self, what: str, row: ExecRow, job: Awaitable[None]) -> None:
        # The span is opened here, in the task: the job runs with it current.
        with tracing.job_span(self.tracer, what, row) as span:
            try:
                await job
            except CircuitOpenError as exc:
                # The row keeps its lease until it expires, then is claimed again.
                tracing.failed(span, exc, "circuit open")
                log.info("%s: %s", self.name, exc)
            except _EXPECTED as exc:
                tracing.failed(span, exc)
                log.warning(
                    "%s job failed; its row is retried when its lease ends: %s", self.name, exc
                )
            except Exception as exc:
                tracing.failed(span, exc)
                log.exception("%s job crashed; its row is retried when its lease ends", self.name)

    async def drain(self, timeout_s: float) -> None:
        """On shutdown: let running jobs finish; what does not is retried by lease expiry."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def run_loop(
    stop: asyncio.Event,
    name: str,
    step: Callable[[], Awaitable[bool]],
    idle_s: float,
    tasks: TaskSet | None = None,
    drain_s: float = 10.0,
) -> None:
    """Call `step` until stop; when it found nothing to do, wait `idle_s` (or for stop)."""
    try:
        while not stop.is_set():
            try:
                busy = await step()
            except _DB_TROUBLE as exc:
                log.warning("%s: database trouble, retrying: %s", name, exc)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)
    finally:
        if tasks is not None:
            await tasks.drain(drain_s)
