"""Poller wiring: settings -> runtime (runtime.py) -> the management API's routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.poller.api import router
from services.poller.instances.api import router as instances_router
from services.poller.results.api import router as results_router
from services.poller.runtime import PollerRuntime, build_runtime, wired_runtime
from services.poller.settings import PollerSettings
from services.poller.workflows.api import router as workflows_router
from shared.http import create_app as create_service_app
from shared.service import serve


def create_app(settings: PollerSettings) -> FastAPI:
    return app_for(build_runtime(settings))


def app_for(runtime: PollerRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    app = create_service_app(
        runtime,
        routers=[router, results_router, instances_router, workflows_router],
        title="amc-poller",
        description="Turns run requests into AMC executions, follows them, downloads results.",
    )
    wired_runtime.bind(app, runtime)
    return app


def main() -> None:
    serve(PollerSettings, create_app)
