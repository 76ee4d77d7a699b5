"""The console under test, served over real HTTP on the real broker and database, and a
probe service whose consumer dead-letters for real (it refuses the requests it is told to)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from services.console.app import app_for
from services.console.runtime import ConsoleRuntime, build_runtime
from services.console.settings import ConsoleSettings
from shared.config import ServiceSettings
from shared.consumer import PermanentError, Tx
from shared.contract import DeadLetter, ExecutionRequested, Topics
from shared.runtime import ServiceRuntime
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.probe import MIGRATIONS
from tests.support.http import serve_app
from tests.support.kafka import produce
from tests.support.settings import service_settings

API_KEY = "console-test-key"


@dataclass
class Console:
    runtime: ConsoleRuntime
    url: str
    api: httpx.AsyncClient  # with the bearer key
    topics: Topics
    bootstrap: str

    async def audit(self) -> list[dict[str, Any]]:
        rows = await self.runtime.pool.fetch(
            "SELECT principal, action, target, outcome, detail FROM audit_log ORDER BY id"
        )
        return [dict(r) for r in rows]

    async def sign_in(self, http: httpx.AsyncClient, name: str) -> None:
        # As a browser does: the form first, for its sign-in token and cookie.
        token = csrf_of((await http.get("/signin")).text)
        answer = await http.post(
            "/signin", data={"name": name, "api_key": API_KEY, "next": "/", "csrf": token}
        )
        assert answer.status_code == 303, answer.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@asynccontextmanager
async def running_console(
    uid: str, database_url: str, bootstrap: str, **overrides: Any
) -> AsyncIterator[Console]:
    """`overrides`: more console settings (e.g. `poller_url` of a poller the test serves)."""
    settings = service_settings(
        ConsoleSettings,
        service="console",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        api_key=API_KEY,
        **overrides,
    )
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(bootstrap, contract_topics(topics))
    runtime = build_runtime(settings)
    app = app_for(runtime)
    async with (
        serve_app(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30.0
        ) as api,
    ):
        yield Console(runtime, url, api, topics, bootstrap)


@dataclass
class Probe:
    runtime: ServiceRuntime
    refusing: set[str] = field(default_factory=set)

    def consumed(self, outcome: str) -> float:
        topic = self.runtime.topics.name(ExecutionRequested.topic)
        value = self.runtime.registry.get_sample_value(
            "amc_events_consumed_total", {"topic": topic, "outcome": outcome}
        )
        return value or 0.0

    async def seen(self) -> list[str]:
        rows = await self.runtime.pool.fetch("SELECT request_id FROM seen ORDER BY request_id")
        return [r["request_id"] for r in rows]


@asynccontextmanager
async def running_probe(uid: str, database_url: str, bootstrap: str) -> AsyncIterator[Probe]:
    """A service consuming execution.requested that refuses (PermanentError: dead-lettered)
    the request ids in `probe.refusing`, and records the others in `seen`."""
    settings = service_settings(
        ServiceSettings, service="probe", uid=uid, database_url=database_url, bootstrap=bootstrap
    )
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    probe = Probe(runtime)

    @runtime.consumer.on(ExecutionRequested)
    async def on_request(tx: Tx, event: ExecutionRequested) -> None:
        await tx.conn.execute(
            "INSERT INTO seen (event_id, request_id, seq) VALUES ($1, $2, 0)",
            event.event_id,
            event.request_id,
        )
        if event.request_id in probe.refusing:
            # After a write: the savepoint must take it back, with the processed event id.
            raise PermanentError(f"request {event.request_id} is refused by the probe")

    await ensure_topics(bootstrap, contract_topics(runtime.topics))
    await runtime.start()
    try:
        yield probe
    finally:
        await runtime.stop()


async def write_letter(
    console: Console, source: str, key: str, payload: str, reason: str = "refused for a test"
) -> None:
    """A letter as a consumer writes it, without a consumer (no group join to wait for)."""
    letter = DeadLetter(
        source_topic=console.topics.name(source),
        partition=0,
        offset=0,
        consumer=f"{console.topics.prefix}amc-test",
        reason=reason,
        error_type="PermanentError",
        failed_at=datetime.now(UTC),
        key=key,
        headers={"x-origin": "test"},
        payload=payload,
    )
    await produce(
        console.bootstrap,
        console.topics.dlq(source),
        [letter.model_dump_json().encode()],
        key=key.encode(),
    )
