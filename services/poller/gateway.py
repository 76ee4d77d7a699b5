"""Every AMC call the poller makes goes through here: rate slot, circuit breaker, metrics.

The token used for a call comes from the poller's own cache (filled by token.refreshed); it
is decrypted just before the call and never logged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.poller import logic, store
from services.poller.breaker import Breakers, BreakerState
from services.poller.ratelimit import InstanceRateLimiter
from shared.clients import (
    AmcAccount,
    AmcClient,
    ApiError,
    ExecutionInfo,
    ExecutionRequest,
    RateLimitedError,
    ServerError,
    TransportError,
)
from shared.crypto import DecryptionError, KeyRing

T = TypeVar("T")


class CircuitOpenError(Exception):
    """The endpoint's breaker is open: AMC looked down, we are not calling it now."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"circuit open for AMC endpoint {endpoint}")
        self.endpoint = endpoint


class Token:
    """A decrypted access token and the ciphertext it came from (to invalidate exactly it)."""

    __slots__ = ("ciphertext", "value")

    def __init__(self, value: str, ciphertext: str) -> None:
        self.value = value
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "Token(***)"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "amc_poller_amc_calls",
            "AMC calls by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "amc_poller_amc_call_seconds", "AMC call latency", ["endpoint"], registry=registry
        )
        self.breaker_open = Gauge(
            "amc_poller_breaker_open",
            "1 while an endpoint's circuit breaker is open",
            ["endpoint"],
            registry=registry,
        )
        self.completed = Counter(
            "amc_poller_executions_completed",
            "Executions that reached a terminal status",
            ["status"],
            registry=registry,
        )
        self.polls = Counter("amc_poller_polls", "Status polls sent to AMC", registry=registry)
        self.downloaded_bytes = Counter(
            "amc_poller_downloaded_bytes", "Result bytes written to the store", registry=registry
        )


class AmcGateway:
    def __init__(
        self,
        client: AmcClient,
        limiter: InstanceRateLimiter,
        breakers: Breakers,
        pool: asyncpg.Pool[Any],
        keys: KeyRing | None,
        metrics: Metrics,
        margin_s: float,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.breakers = breakers
        self._pool = pool
        self._keys = keys
        self.metrics = metrics
        self._margin_s = margin_s

    def open(self, endpoint: str) -> bool:
        return not self.breakers[endpoint].allows()

    async def token(self, user_id: str, now: datetime) -> Token | None:
        """A usable access token for the user, or None (missing, expiring, refused)."""
        async with self._pool.acquire() as conn:
            cached = await store.cached_token(conn, user_id)
        if cached is None or self._keys is None:
            return None
        if not logic.token_usable(cached.expires_at, cached.invalid, now, self._margin_s):
            return None
        try:
            return Token(self._keys.decrypt(cached.ciphertext), cached.ciphertext)
        except DecryptionError:
            return None

    async def _call(
        self, endpoint: str, instance_id: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        breaker = self.breakers[endpoint]
        if not breaker.begin():
            self.metrics.calls.labels(endpoint, "circuit_open").inc()
            raise CircuitOpenError(endpoint)
        try:
            if instance_id is not None:
                await self.limiter.acquire(instance_id)
            started = time.perf_counter()
            result = await call()
        except (ServerError, TransportError) as exc:
            breaker.failed()
            self._note(endpoint, type(exc).__name__)
            raise
        except RateLimitedError as exc:
            breaker.neutral()
            self._note(endpoint, "throttled")
            if instance_id is not None:
                await self.limiter.push_back(instance_id, exc.retry_after)
            raise
        except ApiError as exc:
            breaker.neutral()
            self._note(endpoint, type(exc).__name__)
            raise
        except BaseException:
            breaker.neutral()
            raise
        breaker.succeeded()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        self._note(endpoint, "ok")
        return result

    def _note(self, endpoint: str, outcome: str) -> None:
        self.metrics.calls.labels(endpoint, outcome).inc()
        state = self.breakers[endpoint].state
        self.metrics.breaker_open.labels(endpoint).set(1 if state is BreakerState.OPEN else 0)

    async def create(
        self, token: Token, account: AmcAccount, request: ExecutionRequest
    ) -> ExecutionInfo:
        return await self._call(
            "create",
            account.instance_id,
            lambda: self.client.create_execution(token.value, account, request),
        )

    async def get(self, token: Token, account: AmcAccount, amc_id: str) -> ExecutionInfo:
        self.metrics.polls.inc()
        return await self._call(
            "get",
            account.instance_id,
            lambda: self.client.get_execution(token.value, account, amc_id),
        )

    async def list_executions(
        self, token: Token, account: AmcAccount, low: datetime, high: datetime
    ) -> list[ExecutionInfo]:
        # Reconciling lists a window of minutes around one submission: one page in practice,
        # so one rate slot per listing (the client follows nextToken pages by itself).
        return await self._call(
            "list",
            account.instance_id,
            lambda: self.client.list_executions(token.value, account, low, high),
        )

    async def cancel(self, token: Token, account: AmcAccount, amc_id: str) -> None:
        await self._call(
            "cancel",
            account.instance_id,
            lambda: self.client.cancel_execution(token.value, account, amc_id),
        )

    async def download_urls(self, token: Token, account: AmcAccount, amc_id: str) -> list[str]:
        return await self._call(
            "download_urls",
            account.instance_id,
            lambda: self.client.download_urls(token.value, account, amc_id),
        )

    @asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A result file; pre-signed storage URLs are not the instance's API (no rate slot)."""
        breaker = self.breakers["results"]
        if not breaker.begin():
            raise CircuitOpenError("results")
        try:
            async with self.client.stream_download(url) as chunks:
                yield chunks
        except (ServerError, TransportError):
            breaker.failed()
            raise
        except BaseException:
            breaker.neutral()
            raise
        breaker.succeeded()
