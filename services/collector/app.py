"""Collector wiring: settings -> runtime (runtime.py) -> the management API's routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.collector.api import router
from services.collector.runtime import CollectorRuntime, build_runtime, wired_runtime
from services.collector.settings import CollectorSettings
from shared.http import create_app as create_http_app
from shared.service import serve


def create_app(settings: CollectorSettings) -> FastAPI:
    return app_for(build_runtime(settings))


def app_for(runtime: CollectorRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    app = create_http_app(
        runtime,
        routers=[router],
        title="amc-collector",
        description="Historical collections: one AMC workflow execution per week of a range.",
    )
    wired_runtime.bind(app, runtime)
    return app


def main() -> None:
    serve(CollectorSettings, create_app)
