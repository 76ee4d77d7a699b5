"""Ad hoc collections: inline SQL instead of a saved workflow, the short form (only the
instance), AMC's run options; refusals that name the fields; collections stored before."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from services.amcctl import app as amcctl
from shared.contract import RunOptions, WeekRequested
from tests.integration.collector.harness import (
    API_KEY,
    Collector,
    collection_body,
    running_collector,
    settings_for,
)
from tests.support.kafka import TopicReader
from tests.support.migrations import migrate_until

SQL = "SELECT campaign, SUM(impressions) AS impressions FROM sponsored_ads_traffic GROUP BY 1"
OPTIONS = {"workflow_execution_timeout_s": 3600, "ignore_data_gaps": True}


def adhoc_body(**overrides: Any) -> dict[str, Any]:
    """Two weeks of the short form: no workflow, no account ids; None leaves a field out."""
    body = collection_body(
        sql_query=SQL, options=OPTIONS, start_date="2024-01-01", end_date="2024-01-14"
    )
    for name in ("workflow_id", "advertiser_id", "marketplace_id"):
        del body[name]
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def _requests(collector: Collector, collection_id: str, n: int) -> list[Any]:
    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == collection_id.encode()]

    topic = collector.topics.name(WeekRequested.topic)
    async with TopicReader(collector.runtime.settings.kafka.bootstrap_servers, topic) as r:
        return mine(await r.wait_for(lambda recs: len(mine(recs)) >= n, timeout_s=20))


async def test_an_adhoc_short_form_collection_sends_its_sql_and_options_every_week(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with running_collector(settings_for(uid, database_url, kafka_bootstrap)) as collector:
        response = await collector.http.post("/collections", json=adhoc_body())
        assert response.status_code == 201, response.text
        created = response.json()
        # Stored as the event sends it: unset ids and options left out.
        assert created["run"] == {
            "user_id": "user-1",
            "instance_id": "amc-inst-1",
            "sql_query": SQL,
            "output_format": "CSV",
            "options": OPTIONS,
            "parameters": {"campaign": "c-1"},
        }
        records = await _requests(collector, created["id"], 2)
        assert len(records) == 2
        for record in records:
            sent = json.loads(record.value)["run"]
            assert sent["sql_query"] == SQL
            assert sent.get("workflow_id") is None
            assert sent.get("advertiser_id") is None
            assert sent.get("marketplace_id") is None
            assert {k: v for k, v in sent["options"].items() if v is not None} == OPTIONS
            assert WeekRequested.from_bytes(record.value).run.options == RunOptions(**OPTIONS)


REFUSED: list[tuple[dict[str, Any], list[str], str]] = [
    (adhoc_body(workflow_id="wf-1"), ["body"], "exactly one of workflow_id"),
    (adhoc_body(sql_query=None), ["body"], "exactly one of workflow_id"),
    (adhoc_body(marketplace_id="m-1"), ["body"], "advertiser_id and marketplace_id together"),
    (
        adhoc_body(options={"workflow_execution_timeout_s": 100}),
        ["body", "options", "workflow_execution_timeout_s"],
        "greater than or equal to 900",
    ),
    (adhoc_body(options={"speed": "fast"}), ["body", "options", "speed"], "Extra inputs"),
]


async def test_refusals_name_the_fields(uid: str, database_url: str, kafka_bootstrap: str) -> None:
    async with running_collector(settings_for(uid, database_url, kafka_bootstrap)) as collector:
        for body, loc, message in REFUSED:
            response = await collector.http.post("/collections", json=body)
            assert response.status_code == 422, response.text
            errors = response.json()["detail"]
            assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors
        listed = await collector.http.get("/collections")
        assert listed.json() == [], "nothing refused was stored"


async def test_collections_stored_before_keep_running(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    schema = settings.schema_name
    await migrate_until(database_url, schema, "collector", "0005")
    collection_id, week_id = uuid.uuid4(), uuid.uuid4()
    old_run = {
        "user_id": "user-1",
        "instance_id": "amc-inst-1",
        "advertiser_id": "adv-1",
        "marketplace_id": "ATVPDKIKX0DER",
        "workflow_id": "wf-old",
        "output_format": "CSV",
        "parameters": {"campaign": "c-1"},
    }
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"""INSERT INTO "{schema}".collections (id, status, run, start_date, end_date,
                    week_start_day, time_zone, max_in_flight, max_attempts, weeks_total)
                VALUES ($1, 'QUEUED', $2::jsonb, $3::date, $3::date + 6, 'MONDAY', 'UTC',
                        2, 3, 1)""",
            collection_id,
            json.dumps(old_run),
            date(2024, 1, 1),
        )
        await conn.execute(
            f"""INSERT INTO "{schema}".collection_weeks (id, collection_id, seq, week_start,
                    week_end, status, attempt_limit)
                VALUES ($1, $2, 0, $3::date, $3::date + 6, 'PENDING', 3)""",
            week_id,
            collection_id,
            date(2024, 1, 1),
        )
    finally:
        await conn.close()

    async with running_collector(settings) as collector:
        [record] = await _requests(collector, str(collection_id), 1)
        request = WeekRequested.from_bytes(record.value)
        assert request.week_id == week_id
        assert (request.run.workflow_id, request.run.sql_query) == ("wf-old", None)
        assert (request.run.advertiser_id, request.run.marketplace_id) == (
            "adv-1",
            "ATVPDKIKX0DER",
        )
        assert request.run.options == RunOptions()
        assert (await collector.get(str(collection_id)))["run"] == old_run
        # The migration's checks hold what the API checks, for any writer.
        with pytest.raises(asyncpg.CheckViolationError, match="collections_workflow_or_sql"):
            await collector.runtime.pool.execute(
                """UPDATE collections SET run = run || '{"sql_query": "SELECT 1"}'
                   WHERE id = $1""",
                collection_id,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="collections_account_together"):
            await collector.runtime.pool.execute(
                "UPDATE collections SET run = run - 'advertiser_id' WHERE id = $1",
                collection_id,
            )


async def test_the_cli_creates_an_adhoc_collection_from_a_sql_file(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sql_file = tmp_path / "weekly.sql"
    sql_file.write_text(SQL)
    runner = CliRunner()

    async def cli(*args: str, code: int = 0) -> str:
        result = await asyncio.to_thread(runner.invoke, amcctl, ["collections", *args])
        assert result.exit_code == code, result.output
        return result.output

    base = ["create", "--user", "u-1", "--instance", "i-1"]
    base += ["--start", "2024-01-01", "--end", "2024-01-14"]
    async with running_collector(settings_for(uid, database_url, kafka_bootstrap)) as collector:
        monkeypatch.setenv("AMCCTL_COLLECTOR_URL", collector.url)
        monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
        created = json.loads(
            await cli(
                *base,
                "--sql-file",
                str(sql_file),
                "--timeout-s",
                "900",
                "--disable-aggregation-controls",
                "--json",
            )
        )
        assert created["run"]["sql_query"] == SQL
        assert created["run"]["options"] == {
            "workflow_execution_timeout_s": 900,
            "disable_aggregation_controls": True,
        }
        assert "advertiser_id" not in created["run"]
        assert "workflow_id" not in created["run"]
        assert "workflow   ad hoc SQL on i-1" in await cli("show", created["id"])

        both = await cli(*base, "--sql-file", str(sql_file), "--workflow", "wf-1", code=2)
        assert "--workflow" in both
        assert "--sql-file" in both
        timeout = await cli(*base, "--workflow", "wf-1", "--timeout-s", "86401", code=2)
        assert "--timeout-s" in timeout
        missing = await cli(*base, "--sql-file", str(tmp_path / "nope.sql"), code=2)
        assert "--sql-file" in missing
