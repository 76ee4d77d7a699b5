"""The scheduler's runtime: the shared parts plus the firing loop and the outcome handlers.

Routes reach it through `RuntimeDep`, bound by `app.create_app`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import Depends

from services.scheduler import handlers, retention
from services.scheduler.firing import Firer, FiringMetrics
from services.scheduler.operations import Operations
from services.scheduler.runs import Clock, system_clock
from services.scheduler.settings import SchedulerSettings
from shared.http import Wired
from shared.runtime import ServiceRuntime

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
            after_commit=self._wake_relay,
        )
        if consume:
            handlers.register(self, handlers.Outcomes(settings, now, self.tracer))
        self.background("firing")(self._fire)
        if retention.wanted(settings):
            self.background("retention")(self._prune)

    def _wake_relay(self) -> None:
        # Fired runs are published at once, without waiting for the relay's NOTIFY.
        if self.relay is not None:
            self.relay.wake()

    async def _fire(self, stop: asyncio.Event) -> None:
        await self.firer.run(stop)

    async def _prune(self, stop: asyncio.Event) -> None:
        await retention.run(lambda: self.pool, self.scheduler_settings, self.now, stop)

    @property
    def operations(self) -> Operations:
        return Operations(
            self.pool, self.outbox, self.firer, self.scheduler_settings, self.now, self.tracer
        )


def build_runtime(
    settings: SchedulerSettings, *, now: Clock = system_clock, consume: bool = True
) -> SchedulerRuntime:
    return SchedulerRuntime(settings, now=now, consume=consume)


wired_runtime = Wired[SchedulerRuntime]("the scheduler runtime")
RuntimeDep = Annotated[SchedulerRuntime, Depends(wired_runtime)]
