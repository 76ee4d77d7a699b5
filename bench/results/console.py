"""The console's Download of a result, beside the poller's own download of the same file.

A real poller and a real console, each with its database schema and topics on the real broker,
served over real HTTP in this process as tests/integration/poller/test_result_console.py
serves them; the console is signed in to as a browser signs in (form, CSRF token, session
cookie). One SUCCEEDED execution per size is written into the poller's table in one
transaction (its background jobs never see it half-written), its result the file the
benchmark already put in the poller's local result store. Then the same bytes are downloaded
twice: from the poller's `GET /executions/{id}/result` with the API key, and from the
console's `GET /executions/{id}/result`, which relays the poller's stream.

All three (client, console, poller) share this process, so the memory numbers are the whole
chain's: the console's relay adds its own buffers to the poller's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.console.app import app_for as console_app
from services.console.runtime import build_runtime as console_runtime
from services.console.settings import ConsoleSettings
from services.poller import store
from services.poller.app import app_for as poller_app
from services.poller.runtime import build_runtime as poller_runtime
from services.poller.settings import PollerSettings
from shared.config import KafkaSettings
from shared.contract import ExecutionStatus, Origin, OriginKind, Topics, WorkflowRun
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics
from tests.support.http import serve_app

API_KEY = f"bench-{uuid.uuid4().hex}"
CHUNK = 64 * 1024


@dataclass
class Relay:
    poller: httpx.AsyncClient  # the poller's API, with the key
    console: httpx.AsyncClient  # the console, with a signed-in session's cookie
    pool: Any  # the poller's database pool

    async def execution_for(self, result_uri: str) -> uuid.UUID:
        """A SUCCEEDED execution whose result is `result_uri`, written as the poller leaves one."""
        execution_id = uuid.uuid4()
        run = WorkflowRun.model_validate(
            {
                "user_id": "bench",
                "instance_id": "amcbench",
                "workflow_id": "bench-results",
                "time_window_start": datetime(2024, 1, 1, tzinfo=UTC),
                "time_window_end": datetime(2024, 1, 8, tzinfo=UTC),
            }
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await store.insert_execution(
                conn,
                execution_id=execution_id,
                origin=Origin(kind=OriginKind.EXTERNAL, id=f"bench-{execution_id}"),
                attempt=1,
                request_event_id=uuid.uuid4(),
                run=run,
                status=ExecutionStatus.SUCCEEDED,
                waiting_token=False,
            )
            done = await store.update(
                conn,
                execution_id,
                None,
                {
                    "stage": "done",
                    "amc_status": "SUCCEEDED",
                    "result_uri": result_uri,
                    "completed_at": datetime.now(UTC),
                },
            )
            if not done:
                raise RuntimeError(f"the bench execution {execution_id} was not written")
        return execution_id


async def fetch(http: httpx.AsyncClient, path: str, size: int) -> None:
    read = 0
    async with http.stream("GET", path) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
        async for chunk in response.aiter_raw(CHUNK):
            read += len(chunk)
    if read != size:
        raise RuntimeError(f"GET {path}: read {read} bytes of {size}")


async def _sign_in(http: httpx.AsyncClient) -> None:
    form = await http.get("/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if found is None:
        raise RuntimeError(f"the console's sign-in form has no CSRF token ({form.status_code})")
    answer = await http.post(
        "/signin",
        data={"name": "bench", "api_key": API_KEY, "next": "/", "csrf": found.group(1)},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"signing in to the console: {answer.status_code} {answer.text}")


@asynccontextmanager
async def relay(database_url: str, bootstrap: str, result_dir: Path) -> AsyncIterator[Relay]:
    uid = f"bench{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{uid}.")
    common: dict[str, Any] = {
        "database_url": database_url,
        "kafka": kafka,
        "api_key": API_KEY,
        "db_pool_max": 5,
    }
    await ensure_topics(bootstrap, contract_topics(Topics(kafka.topic_prefix)))
    poller_settings = PollerSettings(
        service_name="poller",
        db_schema=f"{uid}_poller",
        event_encryption_keys=KeyRing.generate_key(),
        lwa_client_id="bench",
        result_dir=result_dir,
        **common,
    )
    poller = poller_runtime(poller_settings)
    try:
        async with (
            serve_app(poller_app(poller)) as poller_url,
            httpx.AsyncClient(
                base_url=poller_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300
            ) as poller_http,
        ):
            console_settings = ConsoleSettings(
                service_name="console",
                db_schema=f"{uid}_console",
                poller_url=poller_url,
                api_timeout_s=300,
                **common,
            )
            console = console_runtime(console_settings)
            try:
                async with (
                    serve_app(console_app(console)) as console_url,
                    httpx.AsyncClient(base_url=console_url, timeout=300) as console_http,
                ):
                    await _sign_in(console_http)
                    yield Relay(poller_http, console_http, poller.pool)
            finally:
                await _drop_schema(database_url, f"{uid}_console")
    finally:
        await _drop_schema(database_url, f"{uid}_poller")


async def _drop_schema(database_url: str, schema: str) -> None:

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
