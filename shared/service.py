"""Process entry point shared by the services: settings, logging, tracing, the app, the wait
for the database and the broker (shared/startup.py), then uvicorn."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from shared.config import ServiceSettings, settings_problems
from shared.startup import wait_before_start
from shared.telemetry import setup_logging, setup_tracing

S = TypeVar("S", bound=ServiceSettings)

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Keep what exists once a service is built (modules, classes, schemas: about 100,000
    objects that live as long as the process) out of the cyclic garbage collector's scans.
    Every full collection walked them all again: in bench/outbox, 10-13% of the pipeline's
    CPU was the collector's, a third of that after this. Garbage made while building goes
    first, so nothing is frozen that should have been freed."""
    gc.collect()
    gc.freeze()


def load_settings(cls: type[S]) -> S:
    """The service's settings from its environment; settings it cannot take end the process
    with one line a problem, naming the variable to fix (status 1), not a traceback."""
    try:
        return cls()
    except ValidationError as error:
        problems = "\n  ".join(settings_problems(cls, error))
        raise SystemExit(f"{cls.__name__}: settings that cannot be used:\n  {problems}") from None


def serve(settings_cls: type[S], build_app: Callable[[S], FastAPI]) -> None:
    """Run one service until SIGTERM/SIGINT; uvicorn then runs the graceful shutdown."""
    settings = load_settings(settings_cls)
    setup_logging(settings.log_level)
    setup_tracing(f"amc-{settings.service_name}")
    # Built first: a setting the service cannot use (a missing key) is said at once, not after
    # a wait for a database or broker that is down.
    try:
        app = build_app(settings)
    except ValueError as exc:
        log.error("%s cannot start: %s", settings.service_name, exc)
        raise SystemExit(1) from None
    wait_before_start(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        # uvloop where it is installed (everywhere but Windows, pyproject.toml).
        loop="auto",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        # Outlives the idle pools of the clients calling us (httpx keeps 5 s), so they close
        # first; an equal timeout races and a reused connection fails with a read error.
        timeout_keep_alive=30,
    )
