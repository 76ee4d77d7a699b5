"""Refreshing tokens at LWA: claim rows (short transaction), call LWA (no transaction), store.

Two entry points share one path: `run_cycle` (proactive: every token expiring within the
buffer) and `run_requested` (on-demand: tokens with a pending token.refresh_requested).
Rows are claimed with FOR UPDATE SKIP LOCKED and a short lease, so any number of replicas
split the work and a token is refreshed once per cycle. Each claim records the replica's
owner lock key (shared/ownership.py), so a crashed replica's claims are free at once, as its
database session ends, however long LWA takes; outcomes are stored only while that lock is
held. The lease is renewed while the refresh runs (from the claim until its outcome is
stored): it frees the claims of a replica that lives but stalls. A drain is a pipeline
(pipeline.py): `concurrency` calls in flight throughout, rows claimed ahead by at most half of
that (so a claimed row starts within about one call's time), finished refreshes stored in
batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Link, Span, Status, StatusCode
from prometheus_client import CollectorRegistry

from services.token import logic, store
from services.token.logic import FailureKind
from services.token.lwa_pool import LwaGrants
from services.token.pipeline import CycleResult, Drain, Key, Outcome, Refreshed
from services.token.settings import TokenSettings
from services.token.store import Claimed
from services.token.vault import Vault
from shared.clients.lwa import LwaTokens
from shared.contract import TokenRefreshed, TokenRefreshFailed
from shared.crypto import DecryptionError
from shared.doorbell import Doorbell
from shared.leases import LeaseKeeper
from shared.metrics import MetricSet
from shared.outbox import Outbox
from shared.ownership import Claimant, Ownership
from shared.pause import pause
from shared.telemetry import continue_trace, trace_carrier

log = logging.getLogger(__name__)


def refresh_channel(schema: str) -> str:
    """NOTIFY channel that wakes the on-demand refreshers of one schema."""
    return f"amc_token_refresh_{schema}"[:63]


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RefreshMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.outcomes = metric.counter(
            "amc_token_refreshes", "Refresh attempts by trigger and outcome", "trigger", "outcome"
        )
        self.lwa_calls = metric.counter("amc_token_lwa_calls", "Calls to LWA")
        self.lwa_seconds = metric.histogram(
            "amc_token_lwa_seconds", "Duration of one LWA token call"
        )


Claimer = Callable[[Any, int], Awaitable[list[Claimed]]]


@dataclass(kw_only=True)
class Refresher:
    pool: Callable[[], asyncpg.Pool[Any]]
    outbox: Outbox
    settings: TokenSettings
    vault: Vault
    lwa: LwaGrants
    metrics: RefreshMetrics
    replica: str = field(default_factory=replica_name)
    tracer: trace.Tracer = field(default_factory=lambda: trace.get_tracer("amc.token"))
    listen_dsn: str | None = None
    schema: str = "token"
    # The replica's owner lock; None: claims are held by their expiry alone.
    ownership: Ownership | None = None

    # --- the two triggers ------------------------------------------------------------------

    async def run_cycle(self) -> CycleResult:
        """Refresh every active token that expires within the buffer (one proactive cycle)."""
        s = self.settings

        async def claim(conn: Any, n: int) -> list[Claimed]:
            return await store.claim_due(conn, self.claimant, n, s.refresh_buffer_s)

        with self.tracer.start_as_current_span("token.refresh_cycle"):
            result = await self._drain(claim, "cycle")
        if result.claimed:
            log.info(
                "refresh cycle: %d claimed, %d refreshed, %d need re-authorization, %d failed",
                result.claimed,
                result.refreshed,
                result.reauth_required,
                result.failed,
            )
        return result

    async def run_requested(self) -> CycleResult:
        """Refresh the tokens with a pending on-demand request."""

        async def claim(conn: Any, n: int) -> list[Claimed]:
            return await store.claim_requested(conn, self.claimant, n)

        return await self._drain(claim, "request")

    @property
    def claimant(self) -> Claimant:
        """This replica as its claims name it."""
        return Claimant(self.replica, self.settings.claim_lease_s, self.ownership)

    async def _drain(self, claim: Claimer, trigger: str) -> CycleResult:
        """Claim and refresh until nothing is left, `concurrency` calls in flight throughout
        (services/token/pipeline.py)."""

        async def claim_rows(n: int) -> list[Claimed]:
            # One statement: atomic without a transaction around it.
            async with self.pool().acquire() as conn:
                return await claim(conn, n)

        async def refresh(row: Claimed) -> Outcome:
            return await self._refresh(row, trigger)

        async def store_fresh(fresh: list[Refreshed]) -> CycleResult:
            stored = await self._store(fresh)
            self.metrics.outcomes.labels(trigger, "refreshed").inc(stored.refreshed)
            self.metrics.outcomes.labels(trigger, "lost_claim").inc(stored.lost_claims)
            return stored

        # Each drain renews its own claims, so only a live drain keeps a token claimed.
        async with self._leases(trigger).running() as leases:
            drain = Drain(self.settings.concurrency, claim_rows, refresh, store_fresh, leases)
            return await drain.run()

    def _leases(self, trigger: str) -> LeaseKeeper[Key]:
        lease_s = self.settings.claim_lease_s

        async def renew(claims: Sequence[Key]) -> int:
            async with self.pool().acquire() as conn:
                return await store.renew_claims(conn, claims, lease_s)

        return LeaseKeeper(f"token {trigger} claims", renew, self.settings.claim_renew_interval_s)

    # --- one token -------------------------------------------------------------------------

    async def _refresh(self, claim: Claimed, trigger: str) -> Outcome:
        with self._span(claim, trigger) as span:
            try:
                result = await self._refresh_one(claim)
            except Exception:  # one user's failure never stops the others
                log.exception("refresh of user %s failed unexpectedly", claim.user_id)
                result = await self._record_failure(
                    claim, logic.Failure(FailureKind.RETRY, "internal error during refresh")
                )
            outcome = "refreshed"
            if isinstance(result, CycleResult):
                outcome = (
                    "lost_claim"
                    if result.lost_claims
                    else "reauth_required"
                    if result.reauth_required
                    else "failed"
                )
                self.metrics.outcomes.labels(trigger, outcome).inc()
                if outcome != "lost_claim":
                    span.set_status(Status(StatusCode.ERROR, outcome))
            span.set_attribute("amc.token.outcome", outcome)
        return result

    def _span(self, claim: Claimed, trigger: str) -> AbstractContextManager[Span]:
        """Each refresh is its own trace, or continues the trace of the request that asked
        for it. A proactive one links to its cycle's span rather than being its child: a
        cycle of thousands of tokens would otherwise be one unreadable trace."""
        cycle = trace.get_current_span().get_span_context()
        return continue_trace(
            self.tracer,
            "token refresh",
            claim.trace_context,
            attributes={"amc.user_id": claim.user_id, "amc.token.trigger": trigger},
            links=[Link(cycle)] if cycle.is_valid and not claim.trace_context else [],
        )

    async def _refresh_one(self, claim: Claimed) -> Outcome:
        try:
            refresh_token = self.vault.storage.decrypt(claim.refresh_token_enc)
        except DecryptionError:
            return await self._reauth(claim, logic.UNDECRYPTABLE_REASON)
        if self.ownership is not None and not self.ownership.held:
            # The owner session ended since the claim: another replica may refresh this
            # token now, and two refreshes of one user must never run at once.
            log.warning("owner lock lost; not refreshing user %s", claim.user_id)
            return CycleResult(lost_claims=1)
        self.metrics.lwa_calls.inc()
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span("lwa.refresh"):
                tokens = await self.lwa.refresh(refresh_token, claim.region)
        except Exception as exc:
            failure = logic.classify(exc)
            if failure.kind is FailureKind.REAUTH:
                return await self._reauth(claim, failure.message)
            return await self._record_failure(claim, failure)
        finally:
            self.metrics.lwa_seconds.observe(time.perf_counter() - started)
        return self._seal(claim, tokens)

    def _seal(self, claim: Claimed, tokens: LwaTokens) -> Refreshed:
        """Encrypt at once: clear-text tokens live no longer than this call."""
        access = tokens.access_token.get_secret_value()
        issued_at = datetime.now(UTC)
        expires_at = tokens.expires_at(issued_at)
        grant = store.Grant(
            claim=claim,
            refresh_token_enc=self.vault.storage.encrypt(tokens.refresh_token.get_secret_value()),
            access_token_enc=self.vault.storage.encrypt(access),
            expires_at=expires_at,
        )
        event = TokenRefreshed(
            user_id=claim.user_id,
            access_token_encrypted=self.vault.events.encrypt(access),
            expires_at=expires_at,
            issued_at=issued_at,
        )
        return Refreshed(grant, event, trace_carrier())

    async def _store(self, fresh: list[Refreshed]) -> CycleResult:
        async with self.pool().acquire() as conn, conn.transaction():
            stored = await store.finish_successes(
                conn, [r.grant for r in fresh], self.vault.current_fp
            )
            kept = [r for r in fresh if r.event.user_id in stored]
            await self.outbox.enqueue(
                conn,
                *(r.event for r in kept),
                trace_contexts=[r.trace_context for r in kept],
            )
        for lost in (r for r in fresh if r.event.user_id not in stored):
            log.warning(
                "claim on user %s was lost before the refresh was stored", lost.event.user_id
            )
        return CycleResult(refreshed=len(stored), lost_claims=len(fresh) - len(stored))

    async def _reauth(self, claim: Claimed, reason: str) -> CycleResult:
        log.warning("user %s must authorize again: %s", claim.user_id, reason)
        async with self.pool().acquire() as conn, conn.transaction():
            if not await store.finish_reauth(conn, claim, reason):
                return CycleResult(lost_claims=1)
            await self.outbox.enqueue(
                conn,
                TokenRefreshFailed(user_id=claim.user_id, reauth_required=True, reason=reason),
            )
        return CycleResult(reauth_required=1)

    async def _record_failure(self, claim: Claimed, failure: logic.Failure) -> CycleResult:
        s = self.settings
        outcome = logic.after_transient_failure(
            claim.consecutive_failures,
            threshold=s.failure_threshold,
            requested=claim.requested,
            base_s=s.retry_base_s,
            max_s=s.retry_max_s,
            retry_after_s=failure.retry_after_s,
        )
        log.warning(
            "refresh of user %s failed (%d in a row), next try in %.1fs: %s",
            claim.user_id,
            outcome.failures,
            outcome.next_attempt_in_s,
            failure.message,
        )
        async with self.pool().acquire() as conn, conn.transaction():
            kept = await store.finish_retry(
                conn,
                claim,
                failures=outcome.failures,
                next_attempt_in_s=outcome.next_attempt_in_s,
                error=failure.message,
                answered=outcome.report,
            )
            if not kept:
                return CycleResult(lost_claims=1)
            if outcome.report:
                reason = f"refresh failed {outcome.failures} times in a row: {failure.message}"
                await self.outbox.enqueue(
                    conn,
                    TokenRefreshFailed(
                        user_id=claim.user_id, reauth_required=False, reason=reason[:2000]
                    ),
                )
        return CycleResult(failed=1)

    # --- loops -----------------------------------------------------------------------------

    async def proactive_loop(self, stop: asyncio.Event) -> None:
        """A cycle at start (after the initial delay), then every interval."""
        await pause(stop, self.settings.refresh_initial_delay_s)
        while not stop.is_set():
            await self._guarded(self.run_cycle, stop, "refresh cycle")
            await pause(stop, self.settings.refresh_interval_s)

    async def on_demand_loop(self, stop: asyncio.Event) -> None:
        """Woken by NOTIFY from the request handler; polls as a fallback (and for backoffs)."""
        bell = Doorbell(refresh_channel(self.schema), dsn=self.listen_dsn, what="refresh requests")
        await bell.listen()
        try:
            while not stop.is_set():
                bell.clear()
                await self._guarded(self.run_requested, stop, "on-demand refresh")
                await bell.sleep(stop, self.settings.on_demand_poll_s)
                await bell.listen()
        finally:
            await bell.close()

    async def _guarded(
        self, work: Callable[[], Awaitable[CycleResult]], stop: asyncio.Event, what: str
    ) -> None:
        task = asyncio.ensure_future(work())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                # Shutting down: claims not started yet simply expire; calls in flight finish.
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("%s failed, retrying later: %s", what, exc)
        finally:
            stopper.cancel()
