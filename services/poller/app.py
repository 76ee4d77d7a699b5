"""Wiring of the poller: handlers, background loops, management API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.poller.api import router
from services.poller.api_instances import router as instances_router
from services.poller.api_workflows import router as workflows_router
from services.poller.breaker import Breakers
from services.poller.flow import Announcer
from services.poller.follow import Follower
from services.poller.gateway import AmcGateway, Metrics
from services.poller.gauges import ExecutionGauges
from services.poller.handlers import register_handlers
from services.poller.instances import InstanceDirectory
from services.poller.ratelimit import InstanceRateLimiter
from services.poller.results import result_store
from services.poller.retention import delete_old_results
from services.poller.settings import PollerSettings
from services.poller.submit import Submitter
from services.poller.token_requests import resend_step
from services.poller.tokens import TokenReader
from services.poller.worker import Context, run_loop
from shared.clients import AmcClient
from shared.config import ServiceSettings
from shared.crypto import KeyRing
from shared.http import create_app as create_service_app
from shared.runtime import ServiceRuntime
from shared.service import serve

MIGRATIONS = Path(__file__).with_name("migrations")


def _key_ring(settings: PollerSettings) -> KeyRing:
    if settings.event_encryption_keys is None:
        raise ValueError(
            "EVENT_ENCRYPTION_KEYS is not set: the poller needs it to read token.refreshed"
        )
    return KeyRing.from_csv(settings.event_encryption_keys.get_secret_value())


def build_runtime(settings: PollerSettings) -> ServiceRuntime:
    return _build(settings)[0]


ContextFactory = Callable[[], Awaitable[Context]]


def _build(settings: PollerSettings) -> tuple[ServiceRuntime, Announcer, ContextFactory]:
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    keys = _key_ring(settings)
    metrics = Metrics(runtime.registry)
    out = Announcer(runtime.outbox, metrics.completed)
    register_handlers(runtime, settings, keys, out)
    runtime.gauges(ExecutionGauges(runtime.registry).refresh)
    state: dict[str, Any] = {}

    async def context() -> Context:
        """Built once the pool exists (the runtime creates it on start)."""
        if "ctx" not in state:
            http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=100)
            )
            client = AmcClient(
                settings.amc_base_url,
                settings.lwa_client_id,
                http=http,
                timeout=settings.amc_http_timeout_s,
            )
            limiter = InstanceRateLimiter(
                runtime.pool,
                settings.requests_per_second_per_instance,
                settings.rate_limit_tolerance_s,
            )
            breakers = Breakers(settings.breaker_failure_threshold, settings.breaker_reset_s)
            instances = InstanceDirectory(runtime.pool, settings)
            gateway = AmcGateway(client, limiter, breakers, metrics, instances)
            gateway.meter.install(http)  # amc_api_requests_total: one per HTTP request
            state["http"] = http
            state["ctx"] = Context(
                settings,
                runtime.pool,
                out,
                gateway,
                result_store(settings.results_url or settings.result_dir.resolve().as_uri()),
                instances,
                TokenReader(runtime.pool, keys, settings.token_expiry_margin_s),
            )
        ctx: Context = state["ctx"]
        return ctx

    idle = settings.loop_interval_s
    drain = settings.graceful_timeout_s / 2

    @runtime.background("submitter")
    async def submitter(stop: asyncio.Event) -> None:
        ctx = await context()
        loop = Submitter(ctx)
        loop.tasks.keep_leases(ctx.leases)
        await run_loop(stop, "submitter", loop.step, idle, loop.tasks, drain)

    @runtime.background("poller")
    async def poller(stop: asyncio.Event) -> None:
        ctx = await context()
        loop = Follower(ctx).polls
        loop.tasks.keep_leases(ctx.leases)
        await run_loop(stop, "poller", loop.step, idle, loop.tasks, drain)

    @runtime.background("downloader")
    async def downloader(stop: asyncio.Event) -> None:
        ctx = await context()
        loop = Follower(ctx).downloads
        loop.tasks.keep_leases(ctx.leases)
        await run_loop(stop, "downloader", loop.step, idle, loop.tasks, drain)

    @runtime.background("canceller")
    async def canceller(stop: asyncio.Event) -> None:
        ctx = await context()
        loop = Follower(ctx).cancels
        loop.tasks.keep_leases(ctx.leases)
        await run_loop(stop, "canceller", loop.step, idle, loop.tasks, drain)

    @runtime.background("leases")
    async def leases(stop: asyncio.Event) -> None:
        # Renews the leases of rows whose jobs run here; after stop, until those jobs drained.
        await (await context()).leases.run(stop)

    if settings.results_retention_days is not None:

        @runtime.background("retention")
        async def retention(stop: asyncio.Event) -> None:
            ctx = await context()
            await run_loop(
                stop, "retention", lambda: delete_old_results(ctx), settings.retention_interval_s
            )

    @runtime.background("token-requests")
    async def token_requests(stop: asyncio.Event) -> None:
        ctx = await context()
        await run_loop(stop, "token-requests", lambda: resend_step(ctx), max(idle * 4, 1.0))

    return runtime, out, context


def create_app(settings: ServiceSettings) -> FastAPI:
    assert isinstance(settings, PollerSettings)
    runtime, out, context = _build(settings)
    app = create_service_app(
        runtime,
        routers=[router, instances_router, workflows_router],
        title="amc-poller",
        description="Turns run requests into AMC executions, follows them, downloads results.",
    )
    app.state.poller_announcer = out  # the API cancels executions not yet at AMC
    # The workflow routes call AMC through the same gateway (rate slots, breakers, tokens).
    app.state.poller_context = context
    return app


def main() -> None:
    serve(PollerSettings(), create_app)
