"""A collector killed with SIGKILL mid-collection resumes and runs no week twice."""

from __future__ import annotations

import signal
from typing import Any

import asyncpg
import httpx
import pytest

from amclocal.ports import free_port
from shared.contract import Topics
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.collector.fake_poller import FakePoller
from tests.integration.collector.harness import API_KEY, collection_body, wait_until
from tests.support.processes import service_env, service_process


async def _ready(http: httpx.AsyncClient) -> None:
    async def answers() -> bool:
        try:
            return (await http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(answers, timeout_s=30, what="the collector process to be ready")


@pytest.mark.slow
async def test_killed_collector_resumes_and_runs_no_week_twice(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    topics = Topics(f"{uid}.")
    await ensure_topics(kafka_bootstrap, contract_topics(topics))
    port = free_port()
    env = service_env(
        "collector",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        http_port=str(port),
        tick_interval_s="0.2",
        api_key=API_KEY,
    )
    schema = f"{uid}_collector"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as http,
        FakePoller(kafka_bootstrap, topics, duration_s=0.4) as poller,
    ):
        with service_process("collector", env) as first:
            await _ready(http)
            created = await http.post("/collections", json=collection_body())
            assert created.status_code == 201, created.text
            cid = created.json()["id"]
            conn = await asyncpg.connect(database_url)
            done = {"weeks": 0}
            try:

                async def some_weeks_done() -> bool:
                    done["weeks"] = await conn.fetchval(
                        f"""SELECT count(*) FROM "{schema}".collection_weeks
                            WHERE status = 'SUCCEEDED'"""
                    )
                    return done["weeks"] >= 8

                await wait_until(some_weeks_done, timeout_s=60, what="8 weeks done")
                first.send_signal(signal.SIGKILL)
                first.wait()
            finally:
                await conn.close()
            assert done["weeks"] < 26, "the kill must land mid-collection"

        # While it is down, weeks in flight complete; their events wait on the broker.
        async def in_flight_done() -> bool:
            # Two events per execution: submitted, then its outcome.
            return poller.events_sent == 2 * len(poller.executions)

        await wait_until(in_flight_done, timeout_s=30, what="the weeks in flight to complete")
        with service_process("collector", env):
            await _ready(http)

            async def finished() -> bool:
                found: dict[str, Any] = (await http.get(f"/collections/{cid}")).json()
                return bool(found["status"] == "COMPLETED")

            await wait_until(finished, timeout_s=90, what="the collection to complete")
            weeks = (await http.get(f"/collections/{cid}/weeks")).json()

    assert len(weeks) == 26
    assert all(w["status"] == "SUCCEEDED" and w["attempt"] == 1 for w in weeks)
    per_week = poller.executions_per_week()
    assert len(per_week) == 26
    assert set(per_week.values()) == {1}, "a week ran twice"
    assert poller.peak_in_flight <= 4
