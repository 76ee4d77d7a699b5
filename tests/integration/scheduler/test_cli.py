"""`amcctl schedules ...` against a running scheduler's API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from services.amcctl import app as amcctl
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


async def test_date_expressions_preview_and_rerun_from_the_cli(
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
            "wf-dates",
            "--cron",
            "0 6 1 * *",
            "--timezone",
            "America/New_York",
            "--window",
            "EXPRESSION:FIRSTDAYOFOFFSETMONTH(-1),FIRSTDAYOFOFFSETMONTH(0)",
            "--param",
            "start=FIRSTDAYOFOFFSETMONTH(-1)",
            "--week-start",
            "sunday",
            "--retry-attempts",
            "2",
            "--json",
        )
    )
    assert created["window"]["type"] == "EXPRESSION"
    assert created["week_start"] == "SUNDAY"
    assert created["retry"]["attempts"] == 2
    rows = json.loads(await cli("preview", "--schedule", created["id"], "--count", "2", "--json"))
    assert [(r["time_window_start"], r["parameters"]) for r in rows] == [
        ("2024-03-01T00:00:00", {"start": "2024-03-01"}),
        ("2024-04-01T00:00:00", {"start": "2024-04-01"}),
    ]
    text = await cli("preview", "--schedule", created["id"], "--count", "1")
    assert "window [2024-03-01T00:00:00, 2024-04-01T00:00:00)" in text
    refused = await cli(
        "create",
        *run,
        "--workflow",
        "w",
        "--cron",
        "0 6 * * *",
        "--timezone",
        "UTC",
        "--param",
        "d=TODAY(x)",
        code=1,
    )
    assert "parameters.d: position 7" in refused
    nothing = await cli("rerun", created["id"], "--failed", "--since", "2024-03-01")
    assert "0 run(s) sent again" in nothing
    await cli("rerun", created["id"], "--since", "2024-03-01", code=2)
