"""Ad hoc schedules: inline SQL instead of a saved workflow, the short form (only the
instance), AMC's run options; refusals that name the fields; schedules stored before."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from services.amcctl import app as amcctl
from shared.contract import RunOptions, ScheduleDue
from tests.integration.scheduler.harness import (
    API_KEY,
    Scheduler,
    ShiftedClock,
    running_scheduler,
    schedule_body,
    settings_for,
)
from tests.support.kafka import TopicReader
from tests.support.migrations import migrate_until

SQL = "SELECT campaign, SUM(impressions) AS impressions\nFROM sponsored_ads_traffic\nGROUP BY 1"
OPTIONS = {"workflow_execution_timeout_s": 3600, "ignore_data_gaps": True}


def adhoc_body(**overrides: Any) -> dict[str, Any]:
    """The short form: no workflow, no account ids; an override of None leaves a field out."""
    body = schedule_body(sql_query=SQL, options=OPTIONS)
    for name in ("workflow_id", "advertiser_id", "marketplace_id"):
        del body[name]
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(datetime(2024, 3, 15, 9, 59, 59, tzinfo=UTC))


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock, consume=False) as running:
        yield running


async def _dues(scheduler: Scheduler, schedule_id: str, n: int = 1) -> list[Any]:
    """The raw schedule.due messages of one schedule, once `n` have come."""

    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == schedule_id.encode()]

    async with TopicReader(scheduler.bootstrap, scheduler.topics.name(ScheduleDue.topic)) as r:
        return mine(await r.wait_for(lambda recs: len(mine(recs)) >= n, timeout_s=40))


async def test_an_adhoc_short_form_schedule_sends_its_sql_and_options(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    # Five seconds before the fire time, set here: the start-up took its time, and a busy
    # machine may take a second or more to create the schedule.
    clock.set(datetime(2024, 3, 15, 9, 59, 55, tzinfo=UTC))
    response = await scheduler.http.post("/schedules", json=adhoc_body(cron="0 10 * * *"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["sql_query"], created["workflow_id"]) == (SQL, None)
    assert (created["advertiser_id"], created["marketplace_id"]) == (None, None)
    assert created["options"] == RunOptions(**OPTIONS).model_dump()
    assert await scheduler.get(created["id"]) == created

    [record] = await _dues(scheduler, created["id"])
    sent = json.loads(record.value)["run"]
    # Exactly what the schedule holds: SQL, no workflow, no account ids, the options given.
    assert sent["sql_query"] == SQL
    assert sent.get("workflow_id") is None
    assert sent.get("advertiser_id") is None
    assert sent.get("marketplace_id") is None
    assert {k: v for k, v in sent["options"].items() if v is not None} == OPTIONS
    due = ScheduleDue.from_bytes(record.value)
    assert due.run.options == RunOptions(**OPTIONS)
    assert due.run.workflow_label.startswith("adhoc:")

    # The history keeps the run as sent; a manual run sends the same fields.
    [run] = await scheduler.runs(created["id"])
    assert run["run"]["sql_query"] == SQL
    assert run["run"]["options"]["workflow_execution_timeout_s"] == 3600
    triggered = await scheduler.http.post(f"/schedules/{created['id']}/trigger", json={})
    assert triggered.status_code == 202, triggered.text
    manual = ScheduleDue.from_bytes((await _dues(scheduler, created["id"], 2))[-1].value)
    assert (manual.run.sql_query, manual.run.options) == (SQL, RunOptions(**OPTIONS))


async def test_an_update_switches_between_workflow_and_sql(scheduler: Scheduler) -> None:
    created = await scheduler.create()
    sid = created["id"]
    to_sql = await scheduler.http.patch(
        f"/schedules/{sid}", json={"sql_query": SQL, "options": {"ignore_data_gaps": True}}
    )
    assert to_sql.status_code == 200, to_sql.text
    assert (to_sql.json()["sql_query"], to_sql.json()["workflow_id"]) == (SQL, None)
    assert to_sql.json()["options"]["ignore_data_gaps"] is True
    cleared = await scheduler.http.patch(f"/schedules/{sid}", json={"options": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["options"] == RunOptions().model_dump()
    short = await scheduler.http.patch(
        f"/schedules/{sid}", json={"advertiser_id": None, "marketplace_id": None}
    )
    assert short.status_code == 200, short.text
    assert short.json()["advertiser_id"] is None
    back = await scheduler.http.patch(f"/schedules/{sid}", json={"workflow_id": "wf-2"})
    assert back.status_code == 200, back.text
    assert (back.json()["workflow_id"], back.json()["sql_query"]) == ("wf-2", None)

    both = await scheduler.http.patch(
        f"/schedules/{sid}", json={"workflow_id": "wf-3", "sql_query": SQL}
    )
    assert both.status_code == 422
    assert "workflow_id" in both.text
    assert "sql_query" in both.text
    bad = await scheduler.http.patch(
        f"/schedules/{sid}", json={"options": {"workflow_execution_timeout_s": 100}}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == [
        "body",
        "options",
        "workflow_execution_timeout_s",
    ]
    assert (await scheduler.get(sid))["workflow_id"] == "wf-2", "refusals change nothing"


REFUSED: list[tuple[dict[str, Any], list[str], str]] = [
    (adhoc_body(workflow_id="wf-1"), ["body"], "exactly one of workflow_id"),
    (adhoc_body(sql_query=None), ["body"], "exactly one of workflow_id"),
    (adhoc_body(advertiser_id="adv-1"), ["body"], "advertiser_id and marketplace_id together"),
    (
        adhoc_body(options={"workflow_execution_timeout_s": 100}),
        ["body", "options", "workflow_execution_timeout_s"],
        "greater than or equal to 900",
    ),
    (
        adhoc_body(options={"ignore_data_gaps": "sometimes"}),
        ["body", "options", "ignore_data_gaps"],
        "boolean",
    ),
    (adhoc_body(options={"speed": "fast"}), ["body", "options", "speed"], "Extra inputs"),
    (adhoc_body(sql_query=""), ["body", "sql_query"], "at least 1 character"),
]


@pytest.mark.parametrize(("body", "loc", "message"), REFUSED)
async def test_refusals_name_the_fields(
    scheduler: Scheduler, body: dict[str, Any], loc: list[str], message: str
) -> None:
    response = await scheduler.http.post("/schedules", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors


async def test_schedules_stored_before_keep_firing(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    await migrate_until(database_url, settings.schema_name, "scheduler", "0004")
    schedule_id = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"""INSERT INTO "{settings.schema_name}".schedules (id, name, user_id, instance_id,
                    advertiser_id, marketplace_id, workflow_id, output_format, parameters,
                    timezone, spec, window_rule, next_fire_at, created_at, updated_at)
                VALUES ($1, 'old', 'user-1', 'amc-inst-1', 'adv-1', 'ATVPDKIKX0DER', 'wf-old',
                        'CSV', '{{"campaign": "c-1"}}', 'UTC',
                        '{{"timezone": "UTC", "cron": "0 10 * * *"}}',
                        '{{"type": "MOST_RECENT_DAY"}}', $2, $2, $2)""",
            schedule_id,
            datetime(2024, 3, 15, 10, 0, tzinfo=UTC),
        )
    finally:
        await conn.close()

    async with running_scheduler(settings, now=clock, consume=False) as scheduler:
        found = await scheduler.get(str(schedule_id))
        assert (found["workflow_id"], found["sql_query"]) == ("wf-old", None)
        assert (found["advertiser_id"], found["marketplace_id"]) == ("adv-1", "ATVPDKIKX0DER")
        assert found["options"] == RunOptions().model_dump()
        [record] = await _dues(scheduler, str(schedule_id))
        due = ScheduleDue.from_bytes(record.value)
        assert (due.run.workflow_id, due.run.sql_query) == ("wf-old", None)
        assert (due.run.advertiser_id, due.run.marketplace_id) == ("adv-1", "ATVPDKIKX0DER")
        assert due.run.options == RunOptions()
        # The migration's checks hold what the API checks, for any writer.
        with pytest.raises(asyncpg.CheckViolationError, match="schedules_workflow_or_sql"):
            await scheduler.runtime.pool.execute(
                "UPDATE schedules SET sql_query = 'SELECT 1' WHERE id = $1", schedule_id
            )
        with pytest.raises(asyncpg.CheckViolationError, match="schedules_account_together"):
            await scheduler.runtime.pool.execute(
                "UPDATE schedules SET advertiser_id = NULL WHERE id = $1", schedule_id
            )


def schedules_cli(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Awaitable[str]]:
    """`amcctl schedules ...` against this scheduler: its output, after checking its exit code."""
    monkeypatch.setenv("AMCCTL_SCHEDULER_URL", scheduler.url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    runner = CliRunner()

    async def cli(*args: str, code: int = 0) -> str:
        result = await asyncio.to_thread(runner.invoke, amcctl, ["schedules", *args])
        assert result.exit_code == code, result.output
        return result.output

    return cli


async def test_the_cli_creates_an_adhoc_schedule_from_a_sql_file(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli = schedules_cli(scheduler, monkeypatch)
    sql_file = tmp_path / "report.sql"
    sql_file.write_text(SQL)
    base = ["create", "--user", "u-cli", "--instance", "i-1", "--cron", "0 6 * * *"]
    base += ["--timezone", "UTC"]
    created = json.loads(
        await cli(
            *base,
            "--sql-file",
            str(sql_file),
            "--timeout-s",
            "7200",
            "--ignore-data-gaps",
            "--require-synthetic-data",
            "--json",
        )
    )
    assert (created["sql_query"], created["workflow_id"], created["advertiser_id"]) == (
        SQL,
        None,
        None,
    )
    assert created["options"] == {
        "workflow_execution_timeout_s": 7200,
        "ignore_data_gaps": True,
        "require_synthetic_data": True,
        "disable_aggregation_controls": None,
        "dry_run": None,
    }
    assert "ad hoc SQL@i-1" in await cli("list")

    both = await cli(*base, "--sql-file", str(sql_file), "--workflow", "wf-1", code=2)
    assert "--workflow" in both
    assert "--sql-file" in both
    neither = await cli(*base, code=2)
    assert "--workflow" in neither
    assert "--sql-file" in neither
    one_id = await cli(*base, "--workflow", "wf-1", "--advertiser", "a-1", code=2)
    assert "--advertiser" in one_id
    assert "--marketplace" in one_id
    timeout = await cli(*base, "--workflow", "wf-1", "--timeout-s", "100", code=2)
    assert "--timeout-s" in timeout


async def test_the_cli_updates_what_it_is_given_and_keeps_the_rest(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli = schedules_cli(scheduler, monkeypatch)
    sql_file = tmp_path / "report.sql"
    sql_file.write_text(SQL)
    created = json.loads(
        await cli(
            *("create", "--user", "u-up", "--instance", "i-1", "--workflow", "wf-1"),
            *("--cron", "0 6 * * *", "--timezone", "UTC", "--name", "first", "--json"),
        )
    )
    sid = created["id"]
    to_sql = json.loads(
        await cli("update", sid, "--sql-file", str(sql_file), "--timeout-s", "3600", "--json")
    )
    assert (to_sql["sql_query"], to_sql["workflow_id"]) == (SQL, None)
    assert to_sql["options"]["workflow_execution_timeout_s"] == 3600
    assert (to_sql["name"], to_sql["cron"], to_sql["user_id"]) == ("first", "0 6 * * *", "u-up")

    cleared = json.loads(await cli("update", sid, "--clear-options", "--json"))
    assert cleared["options"]["workflow_execution_timeout_s"] is None
    assert cleared["sql_query"] == SQL

    back = json.loads(await cli("update", sid, "--workflow", "wf-2", "--json"))
    assert (back["workflow_id"], back["sql_query"]) == ("wf-2", None)

    both = await cli("update", sid, "--workflow", "wf-3", "--sql-file", str(sql_file), code=2)
    assert "--sql-file" in both
    assert "nothing to change" in await cli("update", sid, code=1)
    bad = await cli("update", sid, "--cron", "61 * * * *", code=1)
    assert "cron" in bad
