"""The sender loop: claim due deliveries, send each through its channel, record the outcome.

Each claim is a short transaction (FOR UPDATE SKIP LOCKED, then a lease on the row and the
replica's owner lock key, so a killed replica's deliveries are due again at once), the
sending happens outside any transaction, and each delivery is sent and recorded on its own,
so a channel that fails or hangs delays only its own deliveries. Any number of replicas may
run this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from services.notifier import store
from services.notifier.channels import Outcome, send
from services.notifier.logic import gives_up, retry_delay
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from shared.crypto import DecryptionError, KeyRing
from shared.ownership import Ownership

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool[Any]],
        settings: NotifierSettings,
        keys: KeyRing,
        metrics: NotifierMetrics,
        ownership: Ownership | None = None,
    ) -> None:
        self._pool = pool
        # The replica's owner lock; None: claims are held by their lease alone.
        self._ownership = ownership
        self._settings = settings
        self._keys = keys
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.send_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                claimed = await self.claim()
                for delivery in claimed:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._deliver(delivery))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if len(claimed) < self._settings.send_batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._settings.send_interval_s)
        finally:
            # Deliveries under way finish (each is bounded by send_timeout_s); what is not
            # claimed yet stays in the log for another replica or the next start.
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def claim(self) -> list[store.Claimed]:
        async with self._pool().acquire() as conn, conn.transaction():
            return await store.claim_due(
                conn,
                limit=self._settings.send_batch_size,
                lease_s=self._settings.claim_lease_s,
                owner_key=None if self._ownership is None else self._ownership.key,
            )

    async def _deliver(self, delivery: store.Claimed) -> None:
        try:
            url = self._keys.decrypt(delivery.url_encrypted)
        except DecryptionError:
            outcome = Outcome(False, "rule URL cannot be decrypted with NOTIFIER_ENCRYPTION_KEYS")
        else:
            outcome = await send(url, delivery.message, timeout_s=self._settings.send_timeout_s)
        await self._record(delivery, outcome)

    async def _record(self, delivery: store.Claimed, outcome: Outcome) -> None:
        s = self._settings
        async with self._pool().acquire() as conn:
            if outcome.ok:
                await store.mark_sent(conn, delivery)
                self._metrics.deliveries.labels(delivery.channel, "sent").inc()
                return
            final = gives_up(delivery.attempts, s.max_attempts)
            delay = retry_delay(delivery.attempts, base_s=s.retry_base_s, max_s=s.retry_max_s)
            await store.mark_failed(
                conn, delivery, error=outcome.error, retry_in_s=None if final else delay
            )
        self._metrics.deliveries.labels(delivery.channel, "failed" if final else "retry").inc()
        log.warning(
            "delivery of event %s by rule %s through %s failed (attempt %d%s): %s",
            delivery.event_id,
            delivery.rule_id,
            delivery.channel,
            delivery.attempts,
            ", giving up" if final else f", again in {delay:g} s",
            outcome.error,
        )
