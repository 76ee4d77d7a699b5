"""Broker and database for a benchmark run: the given ones, or local ones started for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from amclocal.broker import LocalBroker
from amclocal.postgres import create_database, drop_database, ensure_local_postgres


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
    admin: str | None = None
    name = f"amc_bench_{uuid.uuid4().hex[:8]}"
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        admin = await ensure_local_postgres()
        database_url = await create_database(admin, name)
    try:
        yield Infra(bootstrap, database_url, f"b{uuid.uuid4().hex[:8]}")
    finally:
        if admin is not None:
            await drop_database(admin, name)
        if broker is not None:
            broker.stop()
