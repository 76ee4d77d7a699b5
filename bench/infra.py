"""Broker and database for a benchmark run: the given ones, or local ones started for it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from amclocal.broker import LocalBroker
from amclocal.postgres import create_database, drop_database, local_postgres

T = TypeVar("T")


def event_loop_name() -> str:
    """The loop the services run on: uvicorn picks uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark that hosts a service in this process on the loop the service would run
    on when deployed (shared/service.py), so its CPU figures are the deployed ones."""
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


@dataclass(frozen=True)
class Infra:
    bootstrap: str
    database_url: str
    uid: str


@asynccontextmanager
async def infra() -> AsyncIterator[Infra]:
    broker: LocalBroker | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalBroker()
        bootstrap = broker.start()
    name = f"amc_bench_{uuid.uuid4().hex[:8]}"
    try:
        given = os.environ.get("DATABASE_URL")
        if given:
            yield Infra(bootstrap, given, f"b{uuid.uuid4().hex[:8]}")
            return
        async with local_postgres() as admin:
            database_url = await create_database(admin, name)
            try:
                yield Infra(bootstrap, database_url, f"b{uuid.uuid4().hex[:8]}")
            finally:
                await drop_database(admin, name)
    finally:
        if broker is not None:
            broker.stop()
