"""Scheduler wiring: settings -> runtime (runtime.py) -> the management API's routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.scheduler.api import DESCRIPTION, install_error_handlers, router
from services.scheduler.runs import Clock, system_clock
from services.scheduler.runtime import SchedulerRuntime, build_runtime, wired_runtime
from services.scheduler.settings import SchedulerSettings
from shared.http import create_app as create_http_app
from shared.service import serve


def create_app(
    settings: SchedulerSettings, *, now: Clock = system_clock, consume: bool = True
) -> FastAPI:
    return app_for(build_runtime(settings, now=now, consume=consume))


def app_for(runtime: SchedulerRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    app = create_http_app(runtime, routers=[router], title="amc-scheduler", description=DESCRIPTION)
    wired_runtime.bind(app, runtime)
    install_error_handlers(app)
    return app


def main() -> None:
    serve(SchedulerSettings, create_app)
