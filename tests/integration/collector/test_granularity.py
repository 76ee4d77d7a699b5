"""Collections by day and by month, and date expressions in a collection's parameters."""

from __future__ import annotations

from datetime import date, datetime

from services.collector.logic import Granularity as G
from services.collector.logic import WeekStartDay, split_range
from tests.integration.collector.fake_poller import FakePoller
from tests.integration.collector.harness import collection_body, running_collector, settings_for


async def test_a_monthly_collection_of_a_year_makes_12_executions(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.2) as poller,
    ):
        created = await collector.create(
            start_date="2023-01-01",
            end_date="2023-12-31",
            granularity="MONTH",
            time_zone="America/New_York",
            max_weeks_in_flight=3,
            parameters={
                "month_start": "FIRSTDAYOFOFFSETMONTH(-1)",
                "last_day": "TODAY(-1)",
                "plain": "c-1",
            },
        )
        assert created["granularity"] == "MONTH"
        assert created["progress"]["total"] == 12
        done = await collector.wait_status(created["id"], "COMPLETED")
        assert done["progress"]["counts"]["SUCCEEDED"] == 12
        assert len(poller.executions) == 12
        assert set(poller.executions_per_week().values()) == {1}
        assert poller.peak_in_flight <= 3

        requests = sorted(
            (e.request for e in poller.executions.values()), key=lambda r: r.week_start
        )
        assert [(r.week_start, r.week_end) for r in requests] == [
            (s.start, s.end)
            for s in split_range(date(2023, 1, 1), date(2023, 12, 31), G.MONTH, WeekStartDay.MONDAY)
        ]
        march = requests[2]
        assert march.run.time_window_start == datetime.fromisoformat("2023-03-01T00:00-05:00")
        # The window ends at local midnight after 31 March, in EDT (DST began 12 March).
        assert march.run.time_window_end == datetime.fromisoformat("2023-04-01T00:00-04:00")
        # Expressions are read as of the end of the slice's window, in the collection's zone.
        assert march.run.parameters == {
            "month_start": "2023-03-01",
            "last_day": "2023-03-31",
            "plain": "c-1",
        }


async def test_a_daily_collection_makes_one_execution_per_day(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with (
        running_collector(settings) as collector,
        FakePoller(kafka_bootstrap, collector.topics, duration_s=0.1) as poller,
    ):
        created = await collector.create(
            start_date="2024-02-27", end_date="2024-03-02", granularity="DAY"
        )
        assert created["progress"]["total"] == 5
        await collector.wait_status(created["id"], "COMPLETED")
        starts = sorted(e.request.week_start for e in poller.executions.values())
        assert starts == [
            date(2024, 2, 27),
            date(2024, 2, 28),
            date(2024, 2, 29),
            date(2024, 3, 1),
            date(2024, 3, 2),
        ]


async def test_an_invalid_expression_in_a_collection_is_refused(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_collector(settings) as collector:
        response = await collector.http.post(
            "/collections", json=collection_body(parameters={"d": "TODAY(1"})
        )
        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"][:2] == ["body", "parameters"]
        assert "parameters.d: position 8" in detail["msg"]
