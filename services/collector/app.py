"""Collector wiring: runtime, event handlers, maintenance loop and the management API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.collector import handlers
from services.collector.api import router
from services.collector.engine import CollectorMetrics, Engine
from services.collector.maintenance import Maintenance
from services.collector.operations import Operations
from services.collector.settings import CollectorSettings
from shared.config import ServiceSettings
from shared.http import create_app as create_http_app
from shared.runtime import ServiceRuntime
from shared.service import serve

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


def create_app(settings: ServiceSettings) -> FastAPI:
    if not isinstance(settings, CollectorSettings):
        raise TypeError("the collector needs CollectorSettings")
    return create_http_app(
        build_runtime(settings),
        routers=[router],
        title="amc-collector",
        description="Historical collections: one AMC workflow execution per week of a range.",
    )


def main() -> None:
    serve(CollectorSettings(), create_app)
