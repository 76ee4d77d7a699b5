"""Collections end to end against the real broker and database, with a fake poller."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from services.collector.logic import WeekStartDay, split_weeks
from shared.contract import CollectionCompleted, WeekRequested
from tests.integration.collector.fake_poller import FakePoller, Outcome
from tests.integration.collector.harness import running_collector, settings_for, wait_until
from tests.support.kafka import TopicReader


async def test_26_weeks_with_limit_4_run_exactly_once_each_never_more_than_4_at_once(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.3) as poller,
    ):
        created = await collector.create(max_weeks_in_flight=4)
        assert created["progress"]["total"] == 26
        done = await collector.wait_status(created["id"], "COMPLETED")

        assert done["progress"]["counts"]["SUCCEEDED"] == 26
        assert done["progress"]["percent_done"] == 100.0
        assert len(poller.executions) == 26
        per_week = poller.executions_per_week()
        assert len(per_week) == 26
        assert set(per_week.values()) == {1}
        assert poller.peak_in_flight <= 4

        # Every week ran over its own window, [start 00:00, end + 1 day 00:00) in UTC.
        expected = split_weeks(date(2024, 1, 1), date(2024, 6, 30), WeekStartDay.MONDAY)
        requests = sorted((e.request for e in poller.executions.values()), key=_start)
        assert [(r.week_start, r.week_end) for r in requests] == [
            (w.start, w.end) for w in expected
        ]
        for r in requests:
            assert r.origin.kind == "collection"
            assert r.origin.id == str(r.week_id)
            assert r.attempt == 1
            assert r.run.time_window_start == datetime.fromisoformat(f"{r.week_start}T00:00Z")
            assert r.run.time_window_end == datetime.fromisoformat(
                f"{r.week_end + timedelta(days=1)}T00:00Z"
            )
            assert r.run.workflow_id == "wf-weekly"
            assert r.run.parameters == {"campaign": "c-1"}

        weeks = await collector.weeks(created["id"])
        assert all(w["status"] == "SUCCEEDED" and w["execution_id"] for w in weeks)
        completed = await _completions(
            kafka_bootstrap, collector.topics.name(CollectionCompleted.topic), 1
        )
        assert completed[0]["collection_id"] == created["id"]
        assert (completed[0]["status"], completed[0]["weeks_succeeded"]) == ("COMPLETED", 26)


def _start(r: WeekRequested) -> date:
    return r.week_start


async def _completions(bootstrap: str, topic: str, n: int) -> list[dict[str, object]]:
    async with TopicReader(bootstrap, topic) as reader:
        records = await reader.wait_count(n)
    return [r.json() for r in records]


async def test_transient_failures_succeed_on_retry_with_a_new_execution(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    flaky = {date(2024, 1, 8): 1, date(2024, 1, 29): 1, date(2024, 2, 12): 2}

    def plan(r: WeekRequested) -> Outcome:
        failures = flaky.get(r.week_start, 0)
        if r.attempt > failures:
            return "ok"
        return "timeout" if r.week_start == date(2024, 2, 12) else "transient"

    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.1, plan=plan) as poller,
    ):
        created = await collector.create(end_date="2024-03-31", max_attempts=3)
        done = await collector.wait_status(created["id"], "COMPLETED")
        assert done["progress"]["counts"]["SUCCEEDED"] == 13

        weeks = {w["week_start"]: w for w in await collector.weeks(created["id"])}
        assert weeks["2024-01-08"]["attempt"] == 2
        assert weeks["2024-02-12"]["attempt"] == 3
        assert weeks["2024-01-15"]["attempt"] == 1
        # One execution per attempt, each with its own origin id.
        per_week = Counter(e.request.week_start for e in poller.executions.values())
        assert per_week[date(2024, 1, 8)] == 2
        assert per_week[date(2024, 1, 29)] == 2
        assert per_week[date(2024, 2, 12)] == 3
        assert sum(per_week.values()) == 13 + 4
        assert poller.peak_in_flight <= 4


async def test_permanent_failure_completes_with_failures_then_retry_completes(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    bad = date(2024, 1, 15)  # fails for good on its first attempt
    stubborn = date(2024, 1, 22)  # fails transiently on its first three attempts

    def plan(r: WeekRequested) -> Outcome:
        if r.week_start == bad and r.attempt == 1:
            return "permanent"
        if r.week_start == stubborn and r.attempt <= 3:
            return "transient"
        return "ok"

    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05, plan=plan) as poller,
    ):
        created = await collector.create(end_date="2024-02-25", max_attempts=3)
        cid = created["id"]
        done = await collector.wait_status(cid, "COMPLETED_WITH_FAILURES")
        assert done["progress"]["counts"]["FAILED"] == 2
        assert done["progress"]["counts"]["SUCCEEDED"] == 6
        failed = {w["week_start"]: w for w in await collector.weeks(cid, status="FAILED")}
        assert failed[bad.isoformat()]["attempt"] == 1  # permanent: not retried
        assert failed[bad.isoformat()]["error_code"] == "AMC_VALIDATION"
        assert "unknown column" in failed[bad.isoformat()]["error_message"]
        assert failed[stubborn.isoformat()]["attempt"] == 3  # transient: all attempts used
        assert failed[stubborn.isoformat()]["error_code"] == "AMC_UNAVAILABLE"

        succeeded_week = (await collector.weeks(cid, status="SUCCEEDED"))[0]["id"]
        refused = await collector.http.post(
            f"/collections/{cid}/retry", json={"week_ids": [succeeded_week]}
        )
        assert refused.status_code == 409
        assert "only FAILED weeks" in refused.json()["detail"]

        # Retry only the permanently failed week: it succeeds, the other stays failed.
        chosen = await collector.http.post(
            f"/collections/{cid}/retry", json={"week_ids": [failed[bad.isoformat()]["id"]]}
        )
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["weeks_retried"] == 1
        again = await collector.wait_status(cid, "COMPLETED_WITH_FAILURES")
        assert again["progress"]["counts"]["FAILED"] == 1
        assert again["progress"]["counts"]["SUCCEEDED"] == 7

        # Retry all failed weeks: the stubborn one gets new attempts and succeeds.
        everything = await collector.http.post(f"/collections/{cid}/retry")
        assert everything.json()["weeks_retried"] == 1
        final = await collector.wait_status(cid, "COMPLETED")
        assert final["progress"]["counts"]["SUCCEEDED"] == 8
        weeks = {w["week_start"]: w for w in await collector.weeks(cid)}
        assert weeks[stubborn.isoformat()]["attempt"] == 4
        assert weeks[bad.isoformat()]["attempt"] == 2
        assert len(poller.executions) == 8 + 1 + 3

        statuses = [
            c["status"]
            for c in await _completions(
                kafka_bootstrap, collector.topics.name(CollectionCompleted.topic), 3
            )
        ]
        assert statuses == ["COMPLETED_WITH_FAILURES", "COMPLETED_WITH_FAILURES", "COMPLETED"]

        nothing = await collector.http.post(f"/collections/{cid}/retry")
        assert nothing.status_code == 409


async def test_six_collections_with_global_limit_5_queue_the_sixth(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap, max_active_collections=5)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05) as poller,
    ):
        poller.hold()
        ids = [
            (await collector.create(end_date="2024-01-21", max_weeks_in_flight=1))["id"]
            for _ in range(6)
        ]
        statuses = [(await collector.get(cid))["status"] for cid in ids]
        assert statuses == ["ACTIVE"] * 5 + ["QUEUED"]

        async def five_running() -> bool:
            return len(poller.executions) >= 5

        await wait_until(five_running, what="first week of five collections")
        sixth = ids[5]
        assert all(
            e.request.collection_id.hex != sixth.replace("-", "")
            for e in poller.executions.values()
        )

        poller.release()
        finished = [await collector.wait_status(cid, "COMPLETED") for cid in ids]
        sixth_started = datetime.fromisoformat(finished[5]["started_at"])
        first_done = min(datetime.fromisoformat(c["finished_at"]) for c in finished[:5])
        assert sixth_started >= first_done  # it waited for a slot
        assert len(poller.executions) == 6 * 3


async def test_a_week_whose_result_was_lost_after_amc_ran_it_is_not_run_again(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    """The poller retries a download itself; if it finally gives up, the execution ran at
    AMC and the error is not retryable: the collector must not ask AMC for the week again."""
    lost = date(2024, 1, 8)

    def plan(r: WeekRequested) -> Outcome:
        return "results_lost" if r.week_start == lost else "ok"

    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.05, plan=plan) as poller,
    ):
        created = await collector.create(end_date="2024-01-28", max_attempts=3)
        done = await collector.wait_status(created["id"], "COMPLETED_WITH_FAILURES")
        [failed] = await collector.weeks(created["id"], status="FAILED")
        assert failed["week_start"] == lost.isoformat()
        assert failed["attempt"] == 1
        assert failed["error_code"] == "DOWNLOAD_FAILED"
        assert done["progress"]["counts"]["FAILED"] == 1
        runs = [e for e in poller.executions.values() if e.request.week_start == lost]
        assert len(runs) == 1
