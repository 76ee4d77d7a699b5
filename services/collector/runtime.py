"""The collector's runtime: the shared parts plus its engine, handlers and maintenance loop.

Routes reach it through `RuntimeDep`, bound by `app.create_app`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import Depends

from services.collector import handlers
from services.collector.engine import CollectorMetrics, Engine
from services.collector.maintenance import Maintenance
from services.collector.operations import Operations
from services.collector.settings import CollectorSettings
from shared.http import Wired
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


class CollectorRuntime(ServiceRuntime):
    """The shared runtime plus the collector's engine, handlers and maintenance loop."""

    def __init__(self, settings: CollectorSettings) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS)
        self.collector_settings = settings
        self.engine = Engine(
            settings, self.outbox, CollectorMetrics(self.registry), tracer=self.tracer
        )
        handlers.register(self, self.engine)
        self.background("maintenance")(self._maintenance)

    async def _maintenance(self, stop: asyncio.Event) -> None:
        await Maintenance(self.pool, self.engine).run(stop)

    @property
    def operations(self) -> Operations:
        return Operations(self.pool, self.engine)


def build_runtime(settings: CollectorSettings) -> CollectorRuntime:
    return CollectorRuntime(settings)


wired_runtime = Wired[CollectorRuntime]("the collector runtime")
RuntimeDep = Annotated[CollectorRuntime, Depends(wired_runtime)]
