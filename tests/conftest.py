"""Session infrastructure: one real broker and one fresh database per test process.

KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are used as given. Otherwise, with AMC_TESTCONTAINERS=1
and a Docker engine, testcontainers starts Apache Kafka and PostgreSQL; without it, a local
Tansu broker is started and a fresh database is created on the local PostgreSQL.

The suite runs in pytest-xdist workers (pyproject's addopts, `--dist loadgroup`): each worker
is its own process with its own session fixtures (broker, database, simulator, span exporter),
and every test names its schemas, topics and groups with `uid`, so tests need not know which
worker runs them. Tests that must not be spread over workers share a scope; see
`xdist_scope`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling

from amclocal.broker import LocalBroker
from amclocal.postgres import create_database, drop_database, local_postgres
from shared.telemetry import setup_tracing

pytest_plugins = ["tests.simfixtures"]


# Tests that must not be spread over workers share a scope: under `--dist loadgroup` one
# worker runs a whole scope, one test after another. These scopes are given by node id, on the
# controller, because xdist's own `xdist_group` mark does nothing with pytest 9.2: xdist 3.8
# rewrites a field of the node id that pytest 9.2 no longer reads (pytest-dev/pytest-xdist
# issue 1386), so marked tests were spread over workers all the same.
#
# The e2e `stack` fixture (the services as processes) is started once per worker that uses
# it: its tests share one worker, or every worker would start its own copy of the stack.
STACK_GROUP = "e2e-stack"
STACK_MODULES = frozenset(
    {
        "tests/e2e/test_console.py",
        "tests/e2e/test_runs.py",
        "tests/e2e/test_stack_health.py",
        "tests/e2e/test_traces.py",
    }
)
# `./dev run`'s own test starts the launcher on the ports of its AMC_PORT_BASE: its cases must
# never run at the same time, so they stay in one worker, one after the other.
LOCAL_RUN_GROUP = "local-run"
LOCAL_RUN_MODULE = "tests/e2e/test_local_run.py"


def xdist_scope(nodeid: str) -> str:
    """The scope a test is scheduled in: its group, or the test alone."""
    module = nodeid.split("::", 1)[0]
    if module in STACK_MODULES:
        return STACK_GROUP
    if module == LOCAL_RUN_MODULE:
        return LOCAL_RUN_GROUP
    return nodeid


class GroupedScheduling(LoadGroupScheduling):
    """loadgroup, with the groups above; each other test is scheduled on its own."""

    # xdist's schedulers are extended by overriding this method; there is no public hook.
    def _split_scope(self, nodeid: str) -> str:
        marked = super()._split_scope(nodeid)
        return marked if marked != nodeid else xdist_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> GroupedScheduling | None:
    if config.getvalue("dist") == "loadgroup":
        return GroupedScheduling(config, log)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module that starts using `stack` must join its group, or it silently starts a
    second stack in another worker."""
    strays = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if "stack" in getattr(item, "fixturenames", ())
            and xdist_scope(item.nodeid) != STACK_GROUP
        }
    )
    if strays:
        raise pytest.UsageError(
            f"{', '.join(strays)} use the e2e `stack` fixture: add them to STACK_MODULES "
            "in tests/conftest.py"
        )


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
