"""`amcctl schedules ...` against a running scheduler's API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from shared.cli.main import app as amcctl
from tests.integration.scheduler.harness import (
    API_KEY,
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
)


@pytest.fixture
async def scheduler(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Scheduler]:
    uid = f"t{uuid.uuid4().hex[:10]}"
    settings = settings_for(uid, database_url, kafka_bootstrap)
    now = ShiftedClock(datetime(2024, 3, 8, 12, 0, tzinfo=UTC))
    async with running_scheduler(settings, now=now, consume=False) as running:
        yield running


async def test_create_pause_resume_trigger_and_history_from_the_cli(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMCCTL_SCHEDULER_URL", scheduler.url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    runner = CliRunner()

    async def cli(*args: str, code: int = 0) -> str:
        result = await asyncio.to_thread(runner.invoke, amcctl, ["schedules", *args])
        assert result.exit_code == code, result.output
        return result.output

    run = ["--user", "u-cli", "--instance", "i-1", "--advertiser", "a-1", "--marketplace", "m-1"]
    created = json.loads(
        await cli(
            "create",
            *run,
            "--workflow",
            "wf-cli",
            "--cron",
            "30 6 * * 1-5",
            "--timezone",
            "Europe/Berlin",
            "--parameters",
            '{"region": "EU"}',
            "--param",
            "limit=10",
            "--json",
        )
    )
    schedule_id = created["id"]
    assert created["user_id"] == "u-cli"
    assert created["workflow_id"] == "wf-cli"
    assert created["parameters"] == {"region": "EU", "limit": "10"}
    assert created["state"] == "ACTIVE"

    assert (
        json.loads(await cli("pause", schedule_id, "--note", "holiday", "--json"))["state"]
        == "PAUSED"
    )
    assert json.loads(await cli("resume", schedule_id, "--json"))["state"] == "ACTIVE"
    triggered = await cli("trigger", schedule_id)
    assert triggered.startswith("run ")
    assert " EMITTED " in triggered
    history = json.loads(await cli("history", schedule_id, "--json"))
    assert [r["kind"] for r in history["items"]] == ["MANUAL"]
    assert schedule_id in await cli("list")

    refused = await cli(
        "create", *run, "--workflow", "w", "--cron", "0 0 * * * *", "--timezone", "UTC", code=1
    )
    assert "seconds" in refused
    bad_param = await cli(
        "create",
        *run,
        "--workflow",
        "w",
        "--cron",
        "0 6 * * *",
        "--timezone",
        "UTC",
        "--param",
        "no-equals-sign",
        code=2,
    )
    assert "NAME=VALUE" in bad_param
