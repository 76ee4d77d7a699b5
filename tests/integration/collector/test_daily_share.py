"""A collection's daily share of its AMC instance's cap (issue 20): set at creation, defaulted
by the collector's setting, refused when negative, and carried to the poller in every
week.requested (the poller enforces it: tests/integration/poller/test_daily_cap.py)."""

from __future__ import annotations

import json
from typing import Any

from shared.contract import WeekRequested
from tests.integration.collector.harness import (
    Collector,
    collection_body,
    running_collector,
    settings_for,
)
from tests.support.kafka import TopicReader


async def _shares(collector: Collector, collection_id: str, n: int) -> list[Any]:
    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == collection_id.encode()]

    topic = collector.topics.name(WeekRequested.topic)
    async with TopicReader(collector.runtime.settings.kafka.bootstrap_servers, topic) as r:
        records = mine(await r.wait_for(lambda recs: len(mine(recs)) >= n, timeout_s=20))
    return [json.loads(record.value).get("daily_share") for record in records]


async def test_the_share_is_set_defaulted_refused_and_sent_with_every_week(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap, default_daily_share=7)
    async with running_collector(settings) as collector:
        two_weeks = {"start_date": "2024-01-01", "end_date": "2024-01-14"}
        given = await collector.create(**two_weeks, daily_share=3)
        defaulted = await collector.create(**two_weeks)
        unshared = await collector.create(**two_weeks, daily_share=0)
        assert [c["daily_share"] for c in (given, defaulted, unshared)] == [3, 7, 0]
        assert defaulted["progress"]["cap_estimate"] == "2 week(s) at 7 a day: 1 day(s)"
        assert unshared["progress"]["days_at_share"] is None
        assert "no daily share" in unshared["progress"]["cap_estimate"]

        assert await _shares(collector, given["id"], 2) == [3, 3]
        assert await _shares(collector, defaulted["id"], 2) == [7, 7]
        # No share: none sent (null), which a consumer reads as a producer before it.
        assert await _shares(collector, unshared["id"], 2) == [None, None]

        refused = await collector.http.post(
            "/collections", json=collection_body(**two_weeks, daily_share=-1)
        )
        assert refused.status_code == 422
        assert [e["loc"] for e in refused.json()["detail"]] == [["body", "daily_share"]]
