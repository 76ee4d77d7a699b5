"""The collector under test: served over real HTTP on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from services.collector.app import app_for
from services.collector.runtime import CollectorRuntime, build_runtime
from services.collector.settings import CollectorSettings
from shared.contract import Topics
from shared.topics_admin import contract_topics, ensure_topics
from tests.support.http import json_of, serve_app
from tests.support.settings import service_settings

API_KEY = "collector-test-key"
FINISHED = ("COMPLETED", "COMPLETED_WITH_FAILURES", "CANCELLED")


def collection_body(**overrides: Any) -> dict[str, Any]:
    """26 Monday-aligned weeks: 2024-01-01 (a Monday) to 2024-06-30 (a Sunday)."""
    body: dict[str, Any] = {
        "user_id": "user-1",
        "instance_id": "amc-inst-1",
        "advertiser_id": "adv-1",
        "marketplace_id": "ATVPDKIKX0DER",
        "workflow_id": "wf-weekly",
        "parameters": {"campaign": "c-1"},
        "start_date": "2024-01-01",
        "end_date": "2024-06-30",
        "max_weeks_in_flight": 4,
    }
    body.update(overrides)
    return body


def settings_for(
    uid: str, database_url: str, bootstrap: str, **overrides: Any
) -> CollectorSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "retry_backoff_s": 0.2,
        "retry_backoff_max_s": 1.0,
        "tick_interval_s": 0.2,
    }
    values.update(overrides)
    return service_settings(
        CollectorSettings,
        service="collector",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        **values,
    )


@dataclass
class Collector:
    url: str
    runtime: CollectorRuntime
    http: httpx.AsyncClient
    topics: Topics

    async def create(self, **overrides: Any) -> dict[str, Any]:
        response = await self.http.post("/collections", json=collection_body(**overrides))
        created: dict[str, Any] = json_of(response, 201)
        return created

    async def get(self, collection_id: str) -> dict[str, Any]:
        found: dict[str, Any] = json_of(await self.http.get(f"/collections/{collection_id}"))
        return found

    async def weeks(self, collection_id: str, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/collections/{collection_id}/weeks", params=params)
        found: list[dict[str, Any]] = json_of(response)
        return found

    async def wait_status(
        self, collection_id: str, *statuses: str, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = await self.get(collection_id)
            if found["status"] in statuses and (
                found["status"] not in FINISHED or found["finished_at"] is not None
            ):
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"collection still {found['status']}: {found['progress']}")
            await asyncio.sleep(0.1)


async def wait_until(condition: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_collector(settings: CollectorSettings) -> AsyncIterator[Collector]:
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
        yield Collector(url, runtime, http, topics)
