"""The scheduler under test: served over real HTTP on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

from services.scheduler.app import app_for
from services.scheduler.runs import Clock, system_clock
from services.scheduler.runtime import SchedulerRuntime, build_runtime
from services.scheduler.settings import SchedulerSettings
from shared.contract import (
    ExecutionCompleted,
    ExecutionError,
    ExecutionSubmitted,
    Origin,
    OriginKind,
    ResultLocation,
    Topics,
)
from shared.topics_admin import contract_topics, ensure_topics
from tests.support.http import json_of, serve_app
from tests.support.kafka import produce
from tests.support.settings import service_settings

API_KEY = "scheduler-test-key"


class ShiftedClock:
    """Real time moved to a chosen instant: it runs at real speed from there."""

    def __init__(self, at: datetime | None = None) -> None:
        self.offset = timedelta(0)
        if at is not None:
            self.set(at)

    def set(self, at: datetime) -> None:
        self.offset = at - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def schedule_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "daily report",
        "user_id": "user-1",
        "instance_id": "amc-inst-1",
        "advertiser_id": "adv-1",
        "marketplace_id": "ATVPDKIKX0DER",
        "workflow_id": "wf-daily",
        "parameters": {"campaign": "c-1"},
        "timezone": "UTC",
        "cron": "0 9 * * *",
    }
    body.update(overrides)
    return body


def settings_for(
    uid: str, database_url: str, bootstrap: str, **overrides: Any
) -> SchedulerSettings:
    values: dict[str, Any] = {"api_key": API_KEY}
    values.update(overrides)
    return service_settings(
        SchedulerSettings,
        service="scheduler",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        **values,
    )


@dataclass
class Scheduler:
    url: str
    runtime: SchedulerRuntime
    http: httpx.AsyncClient
    topics: Topics

    @property
    def bootstrap(self) -> str:
        return self.runtime.settings.kafka.bootstrap_servers

    async def create(self, **overrides: Any) -> dict[str, Any]:
        response = await self.http.post("/schedules", json=schedule_body(**overrides))
        created: dict[str, Any] = json_of(response, 201)
        return created

    async def get(self, schedule_id: str) -> dict[str, Any]:
        found: dict[str, Any] = json_of(await self.http.get(f"/schedules/{schedule_id}"))
        return found

    async def runs(self, schedule_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/schedules/{schedule_id}/runs", params={"limit": 500, **params}
        )
        items: list[dict[str, Any]] = json_of(response)["items"]
        return items

    async def set_next_fire(self, schedule_id: str, at: datetime) -> None:
        """Simulate downtime: the stored next fire time moves to `at` (in the past)."""
        await self.runtime.pool.execute(
            "UPDATE schedules SET next_fire_at = $2 WHERE id = $1", UUID(schedule_id), at
        )
        self.runtime.firer.wake()

    async def complete(self, run_id: str, status: str = "SUCCEEDED", **extra: Any) -> UUID:
        """Publish execution.completed for a run, as the poller would."""
        execution_id = uuid4()
        outcome: dict[str, Any] = (
            {"result": ResultLocation(uri=f"file:///r/{run_id}.csv", row_count=3, size_bytes=9)}
            if status == "SUCCEEDED"
            else {"error": ExecutionError(code="AMC_FAILED", message="boom", retryable=False)}
        )
        event = ExecutionCompleted(
            execution_id=execution_id,
            origin=Origin(kind=OriginKind.SCHEDULE, id=run_id),
            status=status,
            amc_execution_id=f"amc-{run_id[:8]}",
            instance_id="amc-inst-1",
            user_id="user-1",
            **outcome,
            **extra,
        )
        await produce(
            self.bootstrap,
            self.topics.name(ExecutionCompleted.topic),
            [event.to_bytes()],
            key=event.key(),
        )
        return execution_id

    async def submitted(self, run_id: str, kind: OriginKind = OriginKind.SCHEDULE) -> None:
        event = ExecutionSubmitted(
            execution_id=uuid4(),
            amc_execution_id=f"amc-{run_id[:8]}",
            instance_id="amc-inst-1",
            user_id="user-1",
            origin=Origin(kind=kind, id=run_id),
        )
        await produce(
            self.bootstrap,
            self.topics.name(ExecutionSubmitted.topic),
            [event.to_bytes()],
            key=event.key(),
        )


async def wait_until(condition: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_scheduler(
    settings: SchedulerSettings, *, now: Clock = system_clock, consume: bool = True
) -> AsyncIterator[Scheduler]:
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(settings.kafka.bootstrap_servers, contract_topics(topics))
    runtime = build_runtime(settings, now=now, consume=consume)
    app = app_for(runtime)
    async with (
        serve_app(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30.0
        ) as http,
    ):
        yield Scheduler(url, runtime, http, topics)
