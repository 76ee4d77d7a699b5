"""The four services as processes, with the simulator, on the session's broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from amclocal.ports import free_ports
from amclocal.stack import SERVICE_NAMES, ServiceStack, new_keys
from tests.support.http import serve_app
from tests.support.otlp import TraceStore, receiver


@pytest.fixture(scope="session")
async def traces() -> AsyncIterator[tuple[TraceStore, str]]:
    store = TraceStore()
    async with serve_app(receiver(store)) as url:
        yield store, url


@pytest.fixture(scope="session")
async def stack(
    kafka_bootstrap: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    traces: tuple[TraceStore, str],
) -> AsyncIterator[ServiceStack]:
    uid = f"e{uuid.uuid4().hex[:8]}"
    log_dir: Path = tmp_path_factory.mktemp("stack")
    *ports, simulator_port = free_ports(len(SERVICE_NAMES) + 1)
    running = ServiceStack(
        bootstrap=kafka_bootstrap,
        database_url=database_url,
        log_dir=log_dir,
        keys=new_keys(),
        ports=dict(zip(SERVICE_NAMES, ports, strict=True)),
        simulator_port=simulator_port,
        topic_prefix=f"{uid}.",
        schema_prefix=f"{uid}_",
        extra_env={
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": traces[1],
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "POLLER_POLL_INTERVALS_S": "[0.5, 1.0]",
            # The session's tests together may pass AMC's 30 executions a day per instance.
            "AMC_SIM_DAILY_EXECUTION_CAP": "0",
            "POLLER_DAILY_EXECUTIONS_PER_INSTANCE": "0",
        },
    )
    try:
        await running.start()
        async with httpx.AsyncClient(base_url=running.simulator_url) as sim:
            fast = {"pending_seconds": 0.3, "running_seconds": 0.7, "result_rows": 25}
            (await sim.post("/_sim/config", json=fast)).raise_for_status()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def api(stack: ServiceStack) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An authorised HTTP client per service."""
    headers = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    clients = {
        name: httpx.AsyncClient(base_url=stack.url(name), headers=headers, timeout=30)
        for name in SERVICE_NAMES
    }
    clients["simulator"] = httpx.AsyncClient(base_url=stack.simulator_url, timeout=30)
    yield clients
    for client in clients.values():
        await client.aclose()
