"""Session infrastructure: one real broker and one fresh database per test process.

KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are used as given. Otherwise, with AMC_TESTCONTAINERS=1
and a Docker engine, testcontainers starts Apache Kafka and PostgreSQL; without it, a local
Tansu broker is started and a fresh database is created on the local PostgreSQL.

The suite runs in pytest-xdist workers (pyproject's addopts, `--dist loadgroup`): each worker
is its own process with its own session fixtures (broker, database, simulator, span exporter),
and every test names its schemas, topics and groups with `uid`, so tests need not know which
worker runs them. Tests that must not be spread over workers carry an `xdist_group`; see
`pytest_collection_modifyitems`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amclocal.broker import LocalBroker
from amclocal.postgres import create_database, drop_database, local_postgres
from shared.telemetry import setup_tracing

pytest_plugins = ["tests.simfixtures"]


# Tests using the e2e `stack` fixture (the services as processes) share one worker: under
# loadgroup each worker that ran one would start its own copy of the whole stack.
STACK_GROUP = "e2e-stack"
# `./dev run`'s own test starts the launcher on the ports of its AMC_PORT_BASE: its cases must
# never run at the same time, so they stay in one worker, one after the other.
LOCAL_RUN_GROUP = "local-run"


# tryfirst: xdist's worker reads the groups in its own modifyitems hook.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(STACK_GROUP))
        elif item.nodeid.startswith("tests/e2e/test_local_run.py"):
            item.add_marker(pytest.mark.xdist_group(LOCAL_RUN_GROUP))


def _containers_requested() -> bool:
    return os.environ.get("AMC_TESTCONTAINERS") == "1"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
    elif _containers_requested():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        broker = LocalBroker()
        broker.start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
    elif _containers_requested():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        async with local_postgres() as admin:
            name = f"amc_test_{uuid.uuid4().hex[:10]}"
            dsn = await create_database(admin, name)
            try:
                yield dsn
            finally:
                await drop_database(admin, name)


@pytest.fixture
def uid() -> str:
    """A short unique name for this test: schemas, topic prefixes and group ids use it."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span finished in this test process (the global provider exports here too).

    Tests share the exporter: select your spans by trace id or by an id attribute of your
    own test, never by position.
    """
    exporter = InMemorySpanExporter()
    setup_tracing("amc-tests", processor=SimpleSpanProcessor(exporter))
    return exporter
