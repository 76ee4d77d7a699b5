"""Process entry point shared by the services: logging, the wait for the database and the
broker (shared/startup.py), tracing, then uvicorn."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.config import ServiceSettings
from shared.startup import wait_before_start
from shared.telemetry import setup_logging, setup_tracing

S = TypeVar("S", bound=ServiceSettings)


def freeze_startup_heap() -> None:
    """Keep what exists once a service is built (modules, classes, schemas: about 100,000
    objects that live as long as the process) out of the cyclic garbage collector's scans.
    Every full collection walked them all again: in bench/outbox, 10-13% of the pipeline's
    CPU was the collector's, a third of that after this. Garbage made while building goes
    first, so nothing is frozen that should have been freed."""
    gc.collect()
    gc.freeze()


def serve(settings: S, build_app: Callable[[S], FastAPI]) -> None:
    """Run one service until SIGTERM/SIGINT; uvicorn then runs the graceful shutdown.
    `build_app` takes the service's own settings class (checked by mypy, not at run time)."""
    setup_logging(settings.log_level)
    setup_tracing(f"amc-{settings.service_name}")
    # Built first: a setting the service cannot use (a malformed key) is said at once, not
    # after a wait for a database or broker that is down.
    app = build_app(settings)
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
