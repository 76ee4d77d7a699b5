"""Every AMC call the poller makes goes through here: rate slot, circuit breaker, metrics.

The token for a call is handed in by the caller, read from the poller's cache by its token
reader (services/poller/exchange/tokens.py); the gateway never reads or logs tokens itself.

A failed call marks the current span (the job's "execution <job>" span) ERROR with the
exception, whose message the clients have already redacted of tokens and URL signatures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

import httpx
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from services.poller import tracing
from services.poller.exchange import failure_policy
from services.poller.exchange.breaker import Breakers, BreakerState
from services.poller.exchange.ratelimit import InstanceRateLimiter
from services.poller.exchange.tokens import Token
from services.poller.instances.directory import InstanceDirectory, Target
from shared.clients import (
    AmcAccount,
    AmcAccountInfo,
    AmcClient,
    AmcInstanceInfo,
    ApiError,
    DownloadUrls,
    ExecutionInfo,
    ExecutionRequest,
    RateLimitedError,
    SavedWorkflow,
    ServerError,
    TransportError,
)
from shared.metrics import MetricSet

T = TypeVar("T")


class CircuitOpenError(Exception):
    """The endpoint's breaker is open: AMC looked down, we are not calling it now."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"circuit open for AMC endpoint {endpoint}")
        self.endpoint = endpoint


_INSTANCE_PUSH_BACK_MAX_S = 60.0


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        metric = MetricSet(registry)
        self.calls = metric.counter(
            "amc_poller_amc_calls", "AMC calls by endpoint and outcome", "endpoint", "outcome"
        )
        self.latency = metric.histogram(
            "amc_poller_amc_call_seconds", "AMC call latency", "endpoint"
        )
        self.breaker_open = metric.gauge(
            "amc_poller_breaker_open", "1 while an endpoint's circuit breaker is open", "endpoint"
        )
        self.completed = metric.counter(
            "amc_poller_executions_completed", "Executions that reached a terminal status", "status"
        )
        self.daily_cap_parked = metric.counter(
            "amc_poller_daily_cap_parked",
            "Runs held back until the next UTC day because the instance's daily cap on "
            "executions created through the API was used up",
            "amc_instance",
        )
        self.polls = metric.counter("amc_poller_polls", "Status polls sent to AMC")
        self.unknown_status = metric.counter(
            "amc_poller_unknown_amc_status",
            "Status answers whose execution status neither Amazon's OpenAPI nor its own "
            "client names (followed as running, until the execution timeout)",
            "status",
        )
        self.downloaded_bytes = metric.counter(
            "amc_poller_downloaded_bytes", "Result bytes written to the store"
        )
        # What AmcThrottled divides: rate(status="429") / rate(all), per amc_instance.
        self.api_requests = metric.counter(
            "amc_api_requests",
            "HTTP requests to an AMC instance's API, by the status it answered ('timeout' or "
            "'transport_error' when there was no answer). Result downloads from pre-signed "
            "storage URLs are not the instance's API and are not counted.",
            "amc_instance",
            "endpoint",
            "status",
        )


@dataclass
class _Call:
    """The gateway call under way in this task: what the httpx hooks count requests under."""

    endpoint: str
    instance_id: str | None  # None: a call not made to one instance's API
    answered: bool = False


_CURRENT_CALL: ContextVar[_Call | None] = ContextVar("amc_poller_current_call", default=None)


class ApiRequestMeter:
    """Counts every HTTP request to an AMC instance's API, one per request: a listing that
    follows nextToken pages is several, and a 200 whose body does not parse is a "200".

    Installed as httpx event hooks on the poller's client; requests made outside a gateway
    call (none today) are not counted. Requests that got no answer are counted by the
    gateway from the TransportError, since no response hook runs for them."""

    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.api_requests

    def install(self, http: httpx.AsyncClient) -> None:
        hooks = http.event_hooks
        http.event_hooks = {
            "request": [*hooks.get("request", []), self._on_request],
            "response": [*hooks.get("response", []), self._on_response],
        }

    async def _on_request(self, request: httpx.Request) -> None:
        call = _CURRENT_CALL.get()
        if call is not None:
            call.answered = False

    async def _on_response(self, response: httpx.Response) -> None:
        call = _CURRENT_CALL.get()
        if call is None:
            return
        call.answered = True
        if call.instance_id is not None:
            self._counter.labels(call.instance_id, call.endpoint, str(response.status_code)).inc()

    def no_answer(self, call: _Call, exc: TransportError) -> None:
        if call.answered or call.instance_id is None:
            return  # the request was counted with its status; the body failed afterwards
        timed_out = isinstance(exc.__cause__, httpx.TimeoutException)
        status = "timeout" if timed_out else "transport_error"
        self._counter.labels(call.instance_id, call.endpoint, status).inc()


class AmcGateway:
    def __init__(
        self,
        client: AmcClient,
        limiter: InstanceRateLimiter,
        breakers: Breakers,
        metrics: Metrics,
        directory: InstanceDirectory | None = None,
        throttle_backoff_s: tuple[float, float] = (2.0, 120.0),
    ) -> None:
        self.client = client
        # 429s in a row per instance (this replica's count): the step of the backoff used
        # when AMC names no Retry-After.
        self._throttled: dict[str, int] = {}
        self._throttle_backoff_s = throttle_backoff_s
        self.directory = directory
        self.limiter = limiter
        self.breakers = breakers
        self.metrics = metrics
        self.meter = ApiRequestMeter(metrics)

    def open(self, endpoint: str) -> bool:
        return not self.breakers[endpoint].allows()

    async def _call(
        self,
        endpoint: str,
        instance_id: str | None,
        call: Callable[[], Awaitable[T]],
        rate: float | None = None,
    ) -> T:
        """`rate`: the instance's requests per second, when the caller resolved the instance
        already (else the directory is asked)."""
        breaker = self.breakers[endpoint]
        if not breaker.begin():
            self.metrics.calls.labels(endpoint, "circuit_open").inc()
            raise CircuitOpenError(endpoint)
        scope = _Call(endpoint, instance_id)
        reset = _CURRENT_CALL.set(scope)
        try:
            if instance_id is not None:
                if rate is None and self.directory is not None:
                    rate = await self.directory.requests_per_second(instance_id)
                await self.limiter.acquire(instance_id, rate)
            started = time.perf_counter()
            result = await call()
        except (ServerError, TransportError) as exc:
            breaker.failed()
            if isinstance(exc, TransportError):
                self.meter.no_answer(scope, exc)
            self._note(endpoint, type(exc).__name__)
            tracing.failed(trace.get_current_span(), exc)
            raise
        except RateLimitedError as exc:
            breaker.neutral()
            self._note(endpoint, "throttled")
            tracing.failed(trace.get_current_span(), exc)
            if instance_id is not None:
                self._backoff_unnamed(instance_id, exc)
                # A wait longer than that is about the refused request (a submission past
                # AMC's daily cap, say), not the rate: polls and downloads must go on.
                wait = min(exc.retry_after, _INSTANCE_PUSH_BACK_MAX_S)
                await self.limiter.push_back(instance_id, wait)
            raise
        except ApiError as exc:
            breaker.neutral()
            self._note(endpoint, type(exc).__name__)
            tracing.failed(trace.get_current_span(), exc)
            raise
        except BaseException:
            breaker.neutral()
            raise
        finally:
            _CURRENT_CALL.reset(reset)
        breaker.succeeded()
        if instance_id is not None:
            self._throttled.pop(instance_id, None)
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        self._note(endpoint, "ok")
        return result

    def _backoff_unnamed(self, instance_id: str, exc: RateLimitedError) -> None:
        """A 429 without Retry-After: wait longer each time in a row, with jitter (every
        caller reads exc.retry_after)."""
        count = self._throttled.get(instance_id, 0) + 1
        self._throttled[instance_id] = count
        if not exc.server_named:
            base_s, cap_s = self._throttle_backoff_s
            exc.retry_after = failure_policy.throttle_wait_s(None, count, base_s, cap_s)

    def _note(self, endpoint: str, outcome: str) -> None:
        self.metrics.calls.labels(endpoint, outcome).inc()
        state = self.breakers[endpoint].state
        self.metrics.breaker_open.labels(endpoint).set(1 if state is BreakerState.OPEN else 0)

    async def _at(self, endpoint: str, at: Target, call: Callable[[], Awaitable[T]]) -> T:
        """A call to the API of an instance resolved already, in its rate slot."""
        return await self._call(endpoint, at.account.instance_id, call, at.requests_per_second)

    async def create(self, token: Token, at: Target, request: ExecutionRequest) -> ExecutionInfo:
        return await self._at(
            "create", at, lambda: self.client.create_execution(token.value, at.account, request)
        )

    async def get(self, token: Token, at: Target, amc_id: str) -> ExecutionInfo:
        self.metrics.polls.inc()
        return await self._at(
            "get", at, lambda: self.client.get_execution(token.value, at.account, amc_id)
        )

    async def list_executions(
        self, token: Token, at: Target, low: datetime, high: datetime
    ) -> list[ExecutionInfo]:
        """Every page of AMC's list, each page a request of its own: its own rate slot."""
        found: list[ExecutionInfo] = []
        next_token: str | None = None
        while True:
            page = await self._at(
                "list",
                at,
                partial(
                    self.client.list_executions_page, token.value, at.account, low, high, next_token
                ),
            )
            found.extend(page.executions)
            if page.next_token is None:
                return found
            next_token = page.next_token

    async def cancel(self, token: Token, at: Target, amc_id: str) -> None:
        await self._at(
            "cancel", at, lambda: self.client.cancel_execution(token.value, at.account, amc_id)
        )

    async def download_urls(self, token: Token, at: Target, amc_id: str) -> DownloadUrls:
        return await self._at(
            "download_urls", at, lambda: self.client.download_urls(token.value, at.account, amc_id)
        )

    async def discover(self, token: Token) -> list[tuple[AmcAccountInfo, list[AmcInstanceInfo]]]:
        """Every AMC account the token's user can see, with its instances (Administration
        API; not one instance's API, so no instance's rate slot)."""
        accounts = await self._call("admin", None, lambda: self.client.list_accounts(token.value))
        found = []
        for account in accounts:
            instances = await self._call(
                "admin",
                None,
                partial(
                    self.client.list_instances,
                    token.value,
                    account.account_id,
                    account.marketplace_id,
                ),
            )
            found.append((account, instances))
        return found

    async def push_workflow(
        self, token: Token, account: AmcAccount, workflow: SavedWorkflow, exists: bool
    ) -> None:
        call = self.client.update_workflow if exists else self.client.create_workflow
        await self._call(
            "workflows", account.instance_id, lambda: call(token.value, account, workflow)
        )

    async def get_workflow(
        self, token: Token, account: AmcAccount, workflow_id: str
    ) -> SavedWorkflow:
        return await self._call(
            "workflows",
            account.instance_id,
            lambda: self.client.get_workflow(token.value, account, workflow_id),
        )

    async def list_workflows(self, token: Token, account: AmcAccount) -> list[SavedWorkflow]:
        return await self._call(
            "workflows",
            account.instance_id,
            lambda: self.client.list_workflows(token.value, account),
        )

    async def delete_workflow(self, token: Token, account: AmcAccount, workflow_id: str) -> None:
        await self._call(
            "workflows",
            account.instance_id,
            lambda: self.client.delete_workflow(token.value, account, workflow_id),
        )

    @asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A result file; pre-signed storage URLs are not the instance's API (no rate slot).

        Its CLIENT span records the URL without the query, which is the signature
        (shared.telemetry.url_for_span)."""
        breaker = self.breakers["results"]
        if not breaker.begin():
            raise CircuitOpenError("results")
        try:
            async with self.client.stream_download(url) as chunks:
                yield chunks
        except (ServerError, TransportError) as exc:
            breaker.failed()
            tracing.failed(trace.get_current_span(), exc)
            raise
        except ApiError as exc:
            breaker.neutral()
            tracing.failed(trace.get_current_span(), exc)
            raise
        except BaseException:
            breaker.neutral()
            raise
        breaker.succeeded()
