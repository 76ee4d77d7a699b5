"""Whole runs through all four services as processes, against the AMC/LWA simulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx

from amclocal.demo import DEMO
from amclocal.stack import ServiceStack
from shared.contract import ExecutionRequested, Origin, OriginKind, WorkflowRun
from tests.support.kafka import TopicReader, produce

RUN = {
    "user_id": DEMO.user_id,
    "instance_id": DEMO.instance_id,
    "advertiser_id": DEMO.advertiser_id,
    "marketplace_id": DEMO.marketplace_id,
}


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 60.0
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def executions_created(sim: httpx.AsyncClient, workflow_id: str) -> int:
    log = (await sim.get("/_sim/requests", params={"kind": "create"})).json()
    return sum(1 for r in log if r["workflow_id"] == workflow_id and r["status"] < 300)


def finished_run(
    api: dict[str, httpx.AsyncClient], schedule_id: str
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A check for `eventually`: the schedule's newest run that has finished, if any."""

    async def check() -> dict[str, Any] | None:
        page = (await api["scheduler"].get(f"/schedules/{schedule_id}/runs")).json()
        runs = [r for r in page["items"] if r["state"] not in ("EMITTED", "SUBMITTED")]
        return runs[0] if runs else None

    return check


async def test_external_request_runs_once_and_completes_with_its_result(
    stack: ServiceStack, api: dict[str, httpx.AsyncClient]
) -> None:
    request_id = f"ext-{uuid.uuid4().hex[:8]}"
    workflow_id = f"wf-{request_id}"
    event = ExecutionRequested(
        request_id=request_id,
        origin=Origin(kind=OriginKind.EXTERNAL, id=request_id),
        run=WorkflowRun.model_validate(
            RUN
            | {
                "workflow_id": workflow_id,
                "time_window_start": "2024-03-01T00:00:00",
                "time_window_end": "2024-03-08T00:00:00",
            }
        ),
    )
    topic = stack.topics.name(ExecutionRequested.topic)
    await produce(stack.bootstrap, topic, [event.to_bytes()] * 2, key=event.key())

    completed_topic = stack.topics.name("execution.completed")
    async with TopicReader(stack.bootstrap, completed_topic) as reader:
        records = await reader.wait_for(
            lambda rs: any(r.json()["origin"]["id"] == request_id for r in rs),
            timeout_s=90,
            what=f"execution.completed for {request_id}",
        )
    completed = next(r.json() for r in records if r.json()["origin"]["id"] == request_id)
    assert completed["status"] == "SUCCEEDED", completed
    assert completed["result"]["row_count"] == 25
    assert await executions_created(api["simulator"], workflow_id) == 1


async def test_a_triggered_schedule_run_succeeds_through_the_poller(
    api: dict[str, httpx.AsyncClient],
) -> None:
    workflow_id = f"wf-sched-{uuid.uuid4().hex[:8]}"
    created = await api["scheduler"].post(
        "/schedules",
        json=RUN | {"workflow_id": workflow_id, "cron": "0 6 * * *", "timezone": "Europe/Berlin"},
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    triggered = await api["scheduler"].post(f"/schedules/{schedule_id}/trigger", json={})
    assert triggered.status_code == 202, triggered.text

    run = await eventually(finished_run(api, schedule_id), "the manual run to finish", 90)
    assert run["state"] == "SUCCEEDED", run
    assert await executions_created(api["simulator"], workflow_id) == 1


async def test_an_adhoc_short_form_schedule_runs_its_sql_with_its_options(
    api: dict[str, httpx.AsyncClient],
) -> None:
    # Unique SQL tells this run's create request from every other in the simulator's log.
    sql = f"SELECT '{uuid.uuid4().hex}' AS tag, campaign FROM sponsored_ads_traffic"
    created = await api["scheduler"].post(
        "/schedules",
        json={
            "user_id": DEMO.user_id,
            "instance_id": DEMO.instance_id,
            "sql_query": sql,
            "options": {"workflow_execution_timeout_s": 1800, "ignore_data_gaps": True},
            "cron": "0 6 * * *",
            "timezone": "UTC",
        },
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    triggered = await api["scheduler"].post(f"/schedules/{schedule_id}/trigger", json={})
    assert triggered.status_code == 202, triggered.text

    run = await eventually(finished_run(api, schedule_id), "the ad hoc run to finish", 90)
    assert run["state"] == "SUCCEEDED", run
    log = (await api["simulator"].get("/_sim/requests", params={"kind": "create"})).json()
    [sent] = [r for r in log if r["sql_query"] == sql and r["status"] < 300]
    assert sent["workflow_id"] is None
    assert (sent["timeout_seconds"], sent["flags"]) == (1800, {"ignoreDataGaps": True})
    # The poller lists the ad hoc execution (no saved workflow) with the run as asked.
    listed = await api["poller"].get(
        "/executions", params={"origin_kind": "schedule", "origin_id": run["id"]}
    )
    assert listed.status_code == 200, listed.text
    [execution] = listed.json()["executions"]
    assert execution["workflow_id"] is None
    assert execution["run"]["sql_query"] == sql


async def test_a_small_collection_completes_one_execution_per_week(
    api: dict[str, httpx.AsyncClient],
) -> None:
    workflow_id = f"wf-coll-{uuid.uuid4().hex[:8]}"
    start = date.today() - timedelta(days=60)
    created = await api["collector"].post(
        "/collections",
        json=RUN
        | {
            "workflow_id": workflow_id,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=20)).isoformat(),
            "max_weeks_in_flight": 2,
        },
    )
    assert created.status_code == 201, created.text
    collection = created.json()

    async def done() -> dict[str, Any] | None:
        body = (await api["collector"].get(f"/collections/{collection['id']}")).json()
        return body if body["status"].startswith("COMPLETED") else None

    finished = await eventually(done, "the collection to complete", 120)
    weeks = finished["progress"]["total"]
    assert finished["status"] == "COMPLETED", finished
    assert weeks >= 3
    assert await executions_created(api["simulator"], workflow_id) == weeks


async def _reject(api: dict[str, httpx.AsyncClient], workflow_id: str) -> None:
    """Every execution of the workflow ends REJECTED at AMC (the simulator's control API).
    Amazon's own client (aws-solutions/amazon-marketing-cloud-insights-on-aws,
    workflow_manager_services.py) ends on REJECTED, a failure, as on FAILED."""
    behavior = {
        "workflow_id": workflow_id,
        "reject": True,
        "rejection_reason": "Query rejected: simulated",
    }
    (await api["simulator"].post("/_sim/amc/workflows", json=behavior)).raise_for_status()


async def test_a_rejected_scheduled_run_is_not_retried_by_its_retry_policy(
    api: dict[str, httpx.AsyncClient],
) -> None:
    workflow_id = f"wf-rej-{uuid.uuid4().hex[:8]}"
    await _reject(api, workflow_id)
    created = await api["scheduler"].post(
        "/schedules",
        json=RUN
        | {
            "workflow_id": workflow_id,
            "cron": "0 6 * * *",
            "timezone": "UTC",
            "retry": {"attempts": 3, "backoff_s": 0, "backoff_max_s": 0},
        },
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    triggered = await api["scheduler"].post(f"/schedules/{schedule_id}/trigger", json={})
    assert triggered.status_code == 202, triggered.text

    async def ended() -> dict[str, Any] | None:
        page = (await api["scheduler"].get(f"/schedules/{schedule_id}/runs")).json()
        runs = [
            r
            for r in page["items"]
            if r["state"] not in ("BUFFERED", "EMITTED", "SUBMITTED", "RETRYING")
        ]
        return runs[0] if runs else None

    run = await eventually(ended, "the rejected run to end", 90)
    assert run["state"] == "FAILED", run
    assert run["error_code"] == "AMC_REJECTED", run
    assert "Query rejected: simulated" in run["error_message"]
    assert run["attempt"] == 1, run
    assert run["retry_at"] is None, run
    assert await executions_created(api["simulator"], workflow_id) == 1


async def test_rejected_collection_weeks_get_no_second_attempt(
    api: dict[str, httpx.AsyncClient],
) -> None:
    workflow_id = f"wf-rejcoll-{uuid.uuid4().hex[:8]}"
    await _reject(api, workflow_id)
    start = date.today() - timedelta(days=60)
    created = await api["collector"].post(
        "/collections",
        json=RUN
        | {
            "workflow_id": workflow_id,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=13)).isoformat(),
            "max_weeks_in_flight": 2,
            "max_attempts": 3,
        },
    )
    assert created.status_code == 201, created.text
    collection = created.json()

    async def done() -> dict[str, Any] | None:
        body = (await api["collector"].get(f"/collections/{collection['id']}")).json()
        return body if body["status"].startswith("COMPLETED") else None

    finished = await eventually(done, "the collection to complete", 120)
    assert finished["status"] == "COMPLETED_WITH_FAILURES", finished
    weeks = finished["progress"]["total"]
    assert weeks >= 2
    assert await executions_created(api["simulator"], workflow_id) == weeks
    listed = (await api["collector"].get(f"/collections/{collection['id']}/weeks")).json()
    assert {(w["status"], w["attempt"], w["error_code"]) for w in listed} == {
        ("FAILED", 1, "AMC_REJECTED")
    }
