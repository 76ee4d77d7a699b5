"""The poller's runtime: the shared parts plus its handlers, the AMC context (gateway, rate
limiter, breakers, instance directory, result store) and the background loops.

Routes reach it through `RuntimeDep`, bound by `app.create_app`: the execution routes for the
announcer (a cancel of an execution AMC does not have yet), the instance and workflow routes
for the context (they call AMC through the loops' gateway: same rate slots, breakers, tokens),
the result routes for the result reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol

import httpx
from fastapi import Depends

from services.poller import retention
from services.poller.exchange.breaker import Breakers
from services.poller.exchange.follow import Follower
from services.poller.exchange.gateway import AmcGateway, Metrics
from services.poller.exchange.ratelimit import InstanceRateLimiter
from services.poller.exchange.submit import Submitter
from services.poller.exchange.token_requests import resend_step
from services.poller.exchange.tokens import TokenReader
from services.poller.flow import Announcer
from services.poller.gauges import execution_gauges
from services.poller.handlers import register_handlers
from services.poller.instances.directory import InstanceDirectory
from services.poller.results.files import ResultReader
from services.poller.results.stores import result_store
from services.poller.settings import PollerSettings
from services.poller.worker import Context, TaskSet, run_loop
from shared.clients import AmcClient
from shared.clients.lanes import LaneTransport
from shared.crypto import KeyRing
from shared.http import Wired
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")
# Connections to one AMC host at most (the bound the shared pool had): polls, submissions
# and downloads in flight; POLLER_MAX_CONCURRENT_POLLS bounds the polls among them.
AMC_LANES = 200


def _key_ring(settings: PollerSettings) -> KeyRing:
    if settings.event_encryption_keys is None:
        raise ValueError(
            "EVENT_ENCRYPTION_KEYS is not set: the poller needs it to read token.refreshed"
        )
    return KeyRing.from_csv(settings.event_encryption_keys.get_secret_value())


class _ClaimLoop(Protocol):
    tasks: TaskSet

    async def step(self) -> bool: ...


class PollerRuntime(ServiceRuntime):
    def __init__(self, settings: PollerSettings) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS, owner_lock=True)
        self.poller_settings = settings
        self.keys = _key_ring(settings)
        self.metrics = Metrics(self.registry)
        self.announcer = Announcer(self.outbox, self.metrics.completed)
        self._context: Context | None = None
        # Reads results back for the API, from whichever store each one's URI names.
        self.result_reader = ResultReader()
        register_handlers(self, settings, self.keys, self.announcer)
        self.gauges(execution_gauges(self.registry).refresh)
        self._loops_from(settings)

    async def context(self) -> Context:
        """Built once the pool exists (the runtime creates it on start)."""
        settings = self.poller_settings
        if self._context is None:
            # Lanes, not httpcore's pool: its cost per request grows with the square of the
            # connections open, and polls keep many open (shared/clients/lanes.py).
            http = httpx.AsyncClient(transport=LaneTransport(AMC_LANES))
            client = AmcClient(
                settings.amc_base_url,
                settings.lwa_client_id,
                http=http,
                timeout=settings.amc_http_timeout_s,
            )
            limiter = InstanceRateLimiter(
                self.pool,
                settings.requests_per_second_per_instance,
                settings.rate_limit_tolerance_s,
            )
            breakers = Breakers(settings.breaker_failure_threshold, settings.breaker_reset_s)
            instances = InstanceDirectory(self.pool, settings)
            gateway = AmcGateway(
                client,
                limiter,
                breakers,
                self.metrics,
                instances,
                throttle_backoff_s=(settings.throttle_base_s, settings.throttle_max_s),
            )
            gateway.meter.install(http)  # amc_api_requests_total: one per HTTP request
            self._context = Context(
                settings,
                self.pool,
                self.announcer,
                gateway,
                result_store(
                    settings.results_url or settings.result_dir.resolve().as_uri(),
                    settings.results_database_url.get_secret_value()
                    if settings.results_database_url
                    else None,
                ),
                instances,
                TokenReader(self.pool, self.keys, settings.token_expiry_margin_s),
                ownership=self.ownership,
            )
        return self._context

    async def stop(self) -> None:
        await super().stop()
        if self._context is not None:
            await self._stop_part("result store", self._context.results.close)

    def _loops_from(self, settings: PollerSettings) -> None:
        idle = settings.loop_interval_s
        drain = settings.graceful_timeout_s / 2

        def claiming(name: str, make: Callable[[Context], _ClaimLoop]) -> None:
            """A loop that claims rows and runs their jobs in its task set, whose rows keep
            their leases renewed."""

            async def run(stop: asyncio.Event) -> None:
                ctx = await self.context()
                loop = make(ctx)
                loop.tasks.keep_leases(ctx.leases)
                await run_loop(stop, name, loop.step, idle, loop.tasks, drain)

            self.background(name)(run)

        claiming("submitter", Submitter)
        claiming("poller", lambda ctx: Follower(ctx).polls)
        claiming("downloader", lambda ctx: Follower(ctx).downloads)
        claiming("canceller", lambda ctx: Follower(ctx).cancels)

        @self.background("leases")
        async def leases(stop: asyncio.Event) -> None:
            # Renews the leases of rows whose jobs run here; after stop, until those jobs drained.
            await (await self.context()).leases.run(stop)

        if retention.wanted(settings):

            @self.background("retention")
            async def prune(stop: asyncio.Event) -> None:
                ctx = await self.context()
                await run_loop(
                    stop,
                    "retention",
                    lambda: retention.delete_old(ctx),
                    settings.retention_interval_s,
                )

        @self.background("token-requests")
        async def token_requests(stop: asyncio.Event) -> None:
            ctx = await self.context()
            await run_loop(stop, "token-requests", lambda: resend_step(ctx), max(idle * 4, 1.0))


def build_runtime(settings: PollerSettings) -> PollerRuntime:
    return PollerRuntime(settings)


wired_runtime = Wired[PollerRuntime]("the poller runtime")
RuntimeDep = Annotated[PollerRuntime, Depends(wired_runtime)]
