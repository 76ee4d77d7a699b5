"""Scheduler wiring: runtime, firing loop, outcome handlers and the management API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.scheduler import handlers
from services.scheduler.api import DESCRIPTION, install_error_handlers, router
from services.scheduler.firing import Clock, Firer, FiringMetrics, system_clock
from services.scheduler.operations import Operations
from services.scheduler.settings import SchedulerSettings
from shared.config import ServiceSettings
from shared.http import create_app as create_http_app
from shared.runtime import ServiceRuntime
from shared.service import serve

MIGRATIONS = Path(__file__).with_name("migrations")


class SchedulerRuntime(ServiceRuntime):
    """The shared runtime plus the firing loop and the run-outcome handlers.

    `now` is the clock of everything time-dependent (firing, API, handlers), so tests can run
    the service at any instant. `consume=False` runs a firing-only replica (no Kafka consumer),
    which lets a test host two replicas in one process without two members of one group.
    """

    def __init__(
        self, settings: SchedulerSettings, *, now: Clock = system_clock, consume: bool = True
    ) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS)
        self.scheduler_settings = settings
        self.now = now
        self.firer = Firer(
            lambda: self.pool,
            self.outbox,
            settings,
            now=now,
            metrics=FiringMetrics(self.registry),
            tracer=self.tracer,
        )
        if consume:
            handlers.register(self, handlers.Outcomes(settings, now, self.tracer))
        self.background("firing")(self._fire)

    async def _fire(self, stop: asyncio.Event) -> None:
        await self.firer.run(stop)

    @property
    def operations(self) -> Operations:
        return Operations(
            self.pool, self.outbox, self.firer, self.scheduler_settings, self.now, self.tracer
        )


def build_runtime(
    settings: SchedulerSettings, *, now: Clock = system_clock, consume: bool = True
) -> SchedulerRuntime:
    return SchedulerRuntime(settings, now=now, consume=consume)


def create_app(
    settings: ServiceSettings, *, now: Clock = system_clock, consume: bool = True
) -> FastAPI:
    if not isinstance(settings, SchedulerSettings):
        raise TypeError("the scheduler needs SchedulerSettings")
    app = create_http_app(
        build_runtime(settings, now=now, consume=consume),
        routers=[router],
        title="amc-scheduler",
        description=DESCRIPTION,
    )
    install_error_handlers(app)
    return app


def main() -> None:
    serve(SchedulerSettings(), create_app)
