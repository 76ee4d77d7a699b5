"""Pause, resume, manual trigger, run outcomes, auto-pause and overlap, over real events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contract import OriginKind, ScheduleDue, SchedulePaused
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
    wait_until,
)
from tests.support.kafka import TopicReader

START = datetime(2024, 3, 8, 12, 5, tzinfo=UTC)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(START)


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock) as running:
        yield running


async def run_state(scheduler: Scheduler, schedule_id: str, run_id: str) -> dict[str, Any]:
    [run] = [r for r in await scheduler.runs(schedule_id) if r["id"] == run_id]
    return run


async def wait_run(
    scheduler: Scheduler, schedule_id: str, run_id: str, *states: str
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await run_state(scheduler, schedule_id, run_id))
        return found["state"] in states

    await wait_until(reached, what=f"run {run_id} to reach {states}")
    return found


async def trigger(scheduler: Scheduler, schedule_id: str, *, force: bool = True) -> Any:
    return await scheduler.http.post(f"/schedules/{schedule_id}/trigger", json={"force": force})


async def test_trigger_now_refuses_a_second_within_five_minutes_unless_forced(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await scheduler.create()
    first = await trigger(scheduler, created["id"], force=False)
    assert first.status_code == 202, first.text
    run = first.json()
    assert (run["kind"], run["state"]) == ("MANUAL", "EMITTED")

    again = await trigger(scheduler, created["id"], force=False)
    assert again.status_code == 409
    assert "force" in again.json()["detail"]
    forced = await trigger(scheduler, created["id"], force=True)
    assert forced.status_code == 202, forced.text
    clock.set(clock() + timedelta(minutes=5, seconds=1))
    later = await trigger(scheduler, created["id"], force=False)
    assert later.status_code == 202, later.text

    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        records = await reader.wait_count(3, timeout_s=20)
    dues = [ScheduleDue.from_bytes(r.value) for r in records]
    assert {str(d.run_id) for d in dues} == {run["id"], forced.json()["id"], later.json()["id"]}
    assert all(d.origin.kind == "schedule" and d.origin.id == str(d.run_id) for d in dues)


async def test_pause_stops_firing_and_resume_starts_from_now(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await scheduler.create(cron="*/10 * * * *")
    sid = created["id"]
    paused = await scheduler.http.post(f"/schedules/{sid}/pause", json={"note": "AMC upgrade"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"] == "PAUSED"
    assert paused.json()["paused_reason"] == "paused by an operator: AMC upgrade"

    # A fire time passes while paused (and another hour of them): nothing is claimed.
    await scheduler.set_next_fire(sid, START - timedelta(hours=1))
    assert await scheduler.runtime.firer.fire_due() == 0
    assert await scheduler.runs(sid) == []

    clock.set(START + timedelta(hours=2, minutes=3))
    resumed = await scheduler.http.post(f"/schedules/{sid}/resume")
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (body["state"], body["paused_reason"]) == ("ACTIVE", None)
    assert body["next_fire_at"] == "2024-03-08T14:10:00Z"
    assert await scheduler.runtime.firer.fire_due() == 0, "no burst of missed runs"
    assert await scheduler.runs(sid) == []

    topic = scheduler.topics.name(SchedulePaused.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        [record] = await reader.wait_count(1, timeout_s=20)
    event = SchedulePaused.from_bytes(record.value)
    assert str(event.schedule_id) == sid
    assert event.reason == "paused by an operator: AMC upgrade"


async def test_outcomes_move_runs_and_five_failures_pause_the_schedule(
    scheduler: Scheduler,
) -> None:
    created = await scheduler.create()
    sid = created["id"]

    async def run_to(status: str) -> str:
        run_id: str = (await trigger(scheduler, sid)).json()["id"]
        await scheduler.complete(run_id, status)
        await wait_run(scheduler, sid, run_id, status)
        return run_id

    # Submitted first: EMITTED -> SUBMITTED with the execution ids.
    submitted_id: str = (await trigger(scheduler, sid)).json()["id"]
    await scheduler.submitted(submitted_id)
    run = await wait_run(scheduler, sid, submitted_id, "SUBMITTED")
    assert run["amc_execution_id"] == f"amc-{submitted_id[:8]}"
    assert run["execution_id"] is not None
    await scheduler.complete(submitted_id, "SUCCEEDED")
    run = await wait_run(scheduler, sid, submitted_id, "SUCCEEDED")
    assert run["result_uri"] == f"file:///r/{submitted_id}.csv"

    for _ in range(4):
        await run_to("FAILED")
    assert (await scheduler.get(sid))["consecutive_failures"] == 4
    await run_to("SUCCEEDED")
    assert (await scheduler.get(sid))["consecutive_failures"] == 0, "a success resets"
    await run_to("CANCELLED")
    assert (await scheduler.get(sid))["consecutive_failures"] == 0, "a cancel is no failure"
    for _ in range(4):
        await run_to("FAILED")
    assert (await scheduler.get(sid))["state"] == "ACTIVE"
    await run_to("TIMED_OUT")

    paused = await scheduler.get(sid)
    assert paused["state"] == "PAUSED"
    assert paused["consecutive_failures"] == 5
    assert paused["paused_reason"] == "auto-paused after 5 consecutive failed runs"
    topic = scheduler.topics.name(SchedulePaused.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        [record] = await reader.wait_count(1, timeout_s=20)
    event = SchedulePaused.from_bytes(record.value)
    assert (str(event.schedule_id), event.consecutive_failures) == (sid, 5)

    stats = (await scheduler.http.get(f"/schedules/{sid}/stats")).json()
    assert stats["runs"] == 12
    assert (stats["succeeded"], stats["failed"], stats["cancelled"]) == (2, 9, 1)
    assert stats["success_rate"] == pytest.approx(2 / 12)
    assert stats["last_run_state"] == "TIMED_OUT"
    assert stats["mean_duration_s"] is not None
    assert stats["mean_duration_s"] >= 0
    assert stats["next_fire_at"] is None

    resumed = (await scheduler.http.post(f"/schedules/{sid}/resume")).json()
    assert (resumed["state"], resumed["consecutive_failures"]) == ("ACTIVE", 0)


async def test_foreign_and_duplicate_outcomes_change_nothing(scheduler: Scheduler) -> None:
    created = await scheduler.create()
    sid = created["id"]
    run_id: str = (await trigger(scheduler, sid)).json()["id"]
    # Same run id, but from a collection or an external request: not ours.
    await scheduler.submitted(run_id, kind=OriginKind.COLLECTION)
    await scheduler.submitted(run_id, kind=OriginKind.EXTERNAL)
    await scheduler.complete(run_id, "FAILED")
    await wait_run(scheduler, sid, run_id, "FAILED")
    # A second, different completion of the same run is ignored: the first outcome stands.
    await scheduler.complete(run_id, "SUCCEEDED")
    other: str = (await trigger(scheduler, sid)).json()["id"]
    await scheduler.complete(other, "SUCCEEDED")
    await wait_run(scheduler, sid, other, "SUCCEEDED")
    run = await run_state(scheduler, sid, run_id)
    assert run["state"] == "FAILED"
    assert run["submitted_at"] is None, "foreign submissions were ignored"


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "allow"])
async def test_overlap_policy_when_the_previous_run_is_in_flight(
    scheduler: Scheduler, policy: str
) -> None:
    created = await scheduler.create(cron="*/10 * * * *", overlap_policy=policy)
    sid = created["id"]
    running: str = (await trigger(scheduler, sid)).json()["id"]
    # Two on-time fire times (within the grace period) while the manual run is in flight.
    for count, seconds in enumerate((30, 20), start=1):
        await scheduler.set_next_fire(sid, START - timedelta(seconds=seconds))

        async def fired(count: int = count) -> bool:
            return len(await scheduler.runs(sid, kind="SCHEDULED")) == count

        await wait_until(fired, what=f"scheduled run {count}")
    runs = sorted(await scheduler.runs(sid, kind="SCHEDULED"), key=lambda r: r["fire_time"])
    states = [r["state"] for r in runs]
    expected = {
        "skip": ["SKIPPED", "SKIPPED"],
        "buffer_one": ["BUFFERED", "SKIPPED"],
        "allow": ["EMITTED", "EMITTED"],
    }[policy]
    assert states == expected
    if policy == "skip":
        assert "still in flight" in runs[0]["skip_reason"]
    if policy != "buffer_one":
        return
    await scheduler.complete(running, "SUCCEEDED")
    released = await wait_run(scheduler, sid, runs[0]["id"], "EMITTED")
    assert released["emitted_at"] is not None
    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        records = await reader.wait_count(2, timeout_s=20)
    run_ids = [str(ScheduleDue.from_bytes(r.value).run_id) for r in records]
    assert sorted(run_ids) == sorted([running, runs[0]["id"]])
