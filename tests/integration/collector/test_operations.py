"""Operator actions, validation, reconciliation and foreign events, on the real stack."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from services.amcctl import app as amcctl
from shared.contract import (
    CollectionCompleted,
    ExecutionCompleted,
    ExecutionError,
    Origin,
    OriginKind,
    WeekRequested,
)
from tests.integration.collector.fake_poller import FakePoller, Outcome
from tests.integration.collector.harness import (
    API_KEY,
    collection_body,
    running_collector,
    settings_for,
    wait_until,
)
from tests.support.kafka import TopicReader, produce


def _fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {".".join(map(str, d["loc"][1:])): d["msg"] for d in response.json()["detail"]}


async def test_invalid_collections_answer_422_naming_the_field(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap, max_range_days=400)
    async with running_collector(settings) as collector:
        post = collector.http.post
        soon = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"end_date": "2023-12-01"}, "end_date", "before start_date"),
            ({"start_date": "2022-01-01"}, "end_date", "maximum is 400 days"),
            ({"end_date": soon}, "end_date", "too recent"),
            ({"week_start_day": "FUNDAY"}, "week_start_day", "MONDAY or SUNDAY"),
            ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone"),
            ({"start_date": "2024-13-01"}, "start_date", "date"),
            ({"max_weeks_in_flight": 0}, "max_weeks_in_flight", "greater than or equal"),
            ({"workflow_id": ""}, "workflow_id", "at least 1 character"),
        ]
        for overrides, field, text in cases:
            problems = _fields(await post("/collections", json=collection_body(**overrides)))
            assert field in problems, (overrides, problems)
            assert text in problems[field], (overrides, problems)
        listed = (await collector.http.get("/collections")).json()
        assert listed == []

        # The list computes its collections' progress in one query: each as shown alone
        # (compared until no week moved in between; totals differ, so a mix-up would show).
        made = [
            (await collector.create(end_date=end))["id"] for end in ("2024-01-14", "2024-01-21")
        ]
        for _ in range(50):
            alone = {c: (await collector.get(c))["progress"] for c in made}
            together = {
                c["id"]: c["progress"] for c in (await collector.http.get("/collections")).json()
            }
            if together == alone:
                break
            await asyncio.sleep(0.1)
        assert together == alone
        assert [alone[c]["total"] for c in made] == [2, 3]

        missing = await collector.http.get(f"/collections/{uuid.uuid4()}")
        assert missing.status_code == 404
        anonymous = await httpx.AsyncClient(base_url=collector.url).get("/collections")
        assert anonymous.status_code == 401


async def test_cancel_lets_weeks_in_flight_finish_and_requests_no_more(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05) as poller,
    ):
        poller.hold()
        cid = (await collector.create(end_date="2024-03-10", max_weeks_in_flight=2))["id"]

        async def two_running() -> bool:
            # Both submitted as the collector sees it too, so that no week changes state
            # between the two reads of its progress below.
            if len(poller.executions) != 2:
                return False
            return bool((await collector.get(cid))["progress"]["counts"]["RUNNING"] == 2)

        await wait_until(two_running, what="two executions")
        cancelled = (await collector.http.post(f"/collections/{cid}/cancel")).json()
        assert cancelled["status"] == "CANCELLED"
        assert cancelled["finished_at"] is None  # weeks still in flight
        assert cancelled["progress"]["counts"]["CANCELLED"] == 8
        assert cancelled["progress"]["in_flight"] == 2
        # The list computes every collection's progress in one query: the same as one by one.
        [listed] = (await collector.http.get("/collections")).json()
        assert listed["progress"] == cancelled["progress"]

        poller.release()
        done = await collector.wait_status(cid, "CANCELLED")
        assert done["progress"]["counts"]["SUCCEEDED"] == 2
        [listed_done] = [
            c for c in (await collector.http.get("/collections")).json() if c["id"] == cid
        ]
        assert listed_done["progress"] == done["progress"]
        assert len(poller.executions) == 2
        async with TopicReader(
            kafka_bootstrap, collector.topics.name(CollectionCompleted.topic)
        ) as reader:
            event = (await reader.wait_count(1))[0].json()
        assert (event["status"], event["weeks_succeeded"], event["weeks_total"]) == (
            "CANCELLED",
            2,
            10,
        )
        again = await collector.http.post(f"/collections/{cid}/cancel")
        assert again.status_code == 200
        assert (await collector.http.post(f"/collections/{cid}/retry")).status_code == 409


async def test_pause_stops_dispatching_and_resume_finishes(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05) as poller,
    ):
        poller.hold()
        cid = (await collector.create(end_date="2024-02-04", max_weeks_in_flight=2))["id"]

        async def two_running() -> bool:
            # Both submitted as the collector sees it too, so that no week changes state
            # between the two reads of its progress below.
            if len(poller.executions) != 2:
                return False
            return bool((await collector.get(cid))["progress"]["counts"]["RUNNING"] == 2)

        await wait_until(two_running, what="two executions")
        paused = (await collector.http.post(f"/collections/{cid}/pause")).json()
        assert paused["status"] == "PAUSED"
        poller.release()

        async def both_recorded() -> bool:
            found = await collector.get(cid)
            return bool(found["progress"]["counts"]["SUCCEEDED"] == 2)

        await wait_until(both_recorded, what="in-flight weeks recorded")
        # Recording an outcome dispatches in the same transaction; paused, it dispatched none.
        found = await collector.get(cid)
        assert found["status"] == "PAUSED"
        assert found["progress"]["counts"]["PENDING"] == 3
        assert found["progress"]["in_flight"] == 0

        resumed = (await collector.http.post(f"/collections/{cid}/resume")).json()
        assert resumed["status"] == "ACTIVE"
        done = await collector.wait_status(cid, "COMPLETED")
        assert done["progress"]["counts"]["SUCCEEDED"] == 5
        assert len(poller.executions) == 5
        finished_pause = await collector.http.post(f"/collections/{cid}/pause")
        assert finished_pause.status_code == 409


async def test_a_lost_request_is_re_requested_with_the_same_origin_id(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    lost_week = "2024-01-08"

    def plan(r: WeekRequested) -> Outcome:
        return "drop" if r.week_start.isoformat() == lost_week else "ok"

    settings = settings_for(uid, database_url, kafka_bootstrap, reconcile_after_s=1.0)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05, plan=plan) as poller,
    ):
        cid = (await collector.create(end_date="2024-01-21", max_weeks_in_flight=3))["id"]
        await collector.wait_status(cid, "COMPLETED", timeout_s=30)
        week = next(w for w in await collector.weeks(cid) if w["week_start"] == lost_week)
        assert week["attempt"] == 1
        assert len(poller.dropped) == 1
        assert len(poller.executions) == 3  # the re-request did not make a second one
        async with TopicReader(
            kafka_bootstrap, collector.topics.name(WeekRequested.topic)
        ) as reader:
            await reader.wait_count(4)
        same_week = [r.json() for r in reader.records if r.json()["week_id"] == week["id"]]
        assert len(same_week) >= 2
        assert {(r["origin"]["id"], r["attempt"]) for r in same_week} == {(week["id"], 1)}
        assert len({r["event_id"] for r in same_week}) == len(same_week)


async def test_foreign_events_are_ignored_and_bad_origins_dead_lettered(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_collector(settings) as collector:
        topic = collector.topics.name(ExecutionCompleted.topic)

        def completed(origin: Origin) -> bytes:
            return ExecutionCompleted(
                execution_id=uuid.uuid4(),
                origin=origin,
                status="FAILED",
                instance_id="i",
                user_id="u",
                error=ExecutionError(code="AMC_FAILED", message="x", retryable=False),
            ).to_bytes()

        await produce(
            kafka_bootstrap,
            topic,
            [
                completed(Origin(kind=OriginKind.SCHEDULE, id=str(uuid.uuid4()))),
                completed(Origin(kind=OriginKind.COLLECTION, id="not-a-week")),
                completed(Origin(kind=OriginKind.COLLECTION, id=str(uuid.uuid4()))),
            ],
            key=b"k",
        )
        async with TopicReader(kafka_bootstrap, f"{topic}.dlq") as dlq:
            letters = [r.json() for r in await dlq.wait_count(1)]

        async def all_three_consumed() -> bool:
            value = collector.runtime.registry.get_sample_value(
                "amc_events_consumed_total", {"topic": topic, "outcome": "processed"}
            )
            return (value or 0) >= 2

        await wait_until(all_three_consumed, what="the two valid events")
        assert len(letters) == 1
        assert "is not a week id" in letters[0]["reason"]


async def test_amcctl_collections_commands(
    uid: str, database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05),
    ):
        monkeypatch.setenv("AMCCTL_COLLECTOR_URL", collector.url)
        monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
        runner = CliRunner()

        async def cli(*args: str) -> str:
            result = await asyncio.to_thread(runner.invoke, amcctl, ["collections", *args])
            assert result.exit_code == 0, result.output
            return result.output

        created = json.loads(
            await cli(
                "create",
                "--user",
                "u-1",
                "--instance",
                "i-1",
                "--advertiser",
                "a-1",
                "--marketplace",
                "m-1",
                "--workflow",
                "wf-cli",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-14",
                "--param",
                "x=1",
                "--json",
            )
        )
        cid = created["id"]
        assert created["run"]["parameters"] == {"x": "1"}
        await collector.wait_status(cid, "COMPLETED")
        shown = await cli("show", cid)
        assert shown.endswith("\n")  # a shell prompt after it starts on its own line
        assert "[##############################] 100.0%" in shown
        assert "2/2 weeks" in shown
        assert cid in await cli("list")
        weeks = await cli("weeks", cid)
        assert weeks.count("SUCCEEDED") == 2
        failed = await asyncio.to_thread(runner.invoke, amcctl, ["collections", "retry", cid])
        assert failed.exit_code == 1
        assert "no FAILED weeks" in failed.output
        bad = await asyncio.to_thread(
            runner.invoke,
            amcctl,
            [
                "collections",
                "create",
                "--user",
                "u",
                "--instance",
                "i",
                "--advertiser",
                "a",
                "--marketplace",
                "m",
                "--workflow",
                "w",
                "--start",
                "2024-02-01",
                "--end",
                "2024-01-01",
            ],
        )
        assert bad.exit_code == 1
        assert "end_date" in bad.output
