"""The notifier under test: served over real HTTP on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from services.notifier.app import app_for
from services.notifier.runtime import NotifierRuntime, build_runtime
from services.notifier.settings import NotifierSettings
from shared.contract import Event, Topics
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics
from tests.support.http import json_of, serve_app
from tests.support.kafka import produce
from tests.support.settings import service_settings

API_KEY = "notifier-test-key"


def settings_for(uid: str, database_url: str, bootstrap: str, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "encryption_keys": KeyRing.generate_key(),
        "send_interval_s": 0.1,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        "send_timeout_s": 5.0,
        "claim_lease_s": 10.0,
    }
    values.update(overrides)
    return service_settings(
        NotifierSettings,
        service="notifier",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        **values,
    )


@dataclass
class Notifier:
    runtime: NotifierRuntime
    http: httpx.AsyncClient
    topics: Topics
    bootstrap: str

    async def add_rule(self, name: str, url: str, **filter_: list[str]) -> dict[str, Any]:
        response = await self.http.post(
            "/notifications/rules", json={"name": name, "url": url, "filter": filter_}
        )
        created: dict[str, Any] = json_of(response, 201)
        return created

    async def rules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json_of(await self.http.get("/notifications/rules"))
        return found

    async def publish(self, *events: Event) -> None:
        for event in events:
            await produce(
                self.bootstrap,
                self.topics.name(event.topic),
                [event.to_bytes()],
                key=event.key(),
            )

    async def deliveries(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get("/notifications/deliveries", params=params)
        found: list[dict[str, Any]] = json_of(response)
        return found

    async def deliveries_of(self, event_id: UUID) -> list[dict[str, Any]]:
        return await self.deliveries(event_id=str(event_id))


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 30.0, what: str = ""
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'condition'}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[Notifier]:
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka.bootstrap_servers, contract_topics(topics))
    runtime = build_runtime(settings)
    app = app_for(runtime)
    async with (
        serve_app(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30.0
        ) as http,
    ):
        yield Notifier(runtime, http, topics, settings.kafka.bootstrap_servers)
