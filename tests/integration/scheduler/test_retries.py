"""Retries and re-runs of failed scheduled runs: each a new attempt of the same fire time with
the same window and parameters, and never a second success for one fire time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.contract import (
    ExecutionCompleted,
    ExecutionError,
    ExecutionSubmitted,
    Origin,
    OriginKind,
    ResultLocation,
    ScheduleDue,
)
from tests.integration.scheduler.harness import (
    Scheduler,
    ShiftedClock,
    running_scheduler,
    settings_for,
    wait_until,
)
from tests.integration.scheduler.test_firing import dues_of
from tests.support.kafka import TopicReader, produce

FIRE = datetime(2024, 3, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock(FIRE - timedelta(seconds=1))


@pytest.fixture
async def scheduler(
    uid: str, database_url: str, kafka_bootstrap: str, clock: ShiftedClock
) -> AsyncIterator[Scheduler]:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_scheduler(settings, now=clock) as running:
        yield running


async def _publish(scheduler: Scheduler, event: ExecutionCompleted | ExecutionSubmitted) -> None:
    await produce(
        scheduler.bootstrap,
        scheduler.topics.name(event.topic),
        [event.to_bytes()],
        key=event.key(),
    )


async def _outcome(
    scheduler: Scheduler,
    run_id: UUID,
    status: str,
    *,
    retryable: bool = False,
    execution_id: UUID | None = None,
    code: str | None = None,
) -> UUID:
    """Submission then completion of one execution of the run, as the poller publishes them."""
    execution_id = execution_id or uuid4()
    origin = Origin(kind=OriginKind.SCHEDULE, id=str(run_id))
    await _publish(
        scheduler,
        ExecutionSubmitted(
            execution_id=execution_id,
            amc_execution_id=f"amc-{execution_id.hex[:8]}",
            instance_id="amc-inst-1",
            user_id="user-1",
            origin=origin,
        ),
    )
    outcome: dict[str, Any] = (
        {"result": ResultLocation(uri="file:///r.csv", row_count=1, size_bytes=2)}
        if status == "SUCCEEDED"
        else {
            "error": ExecutionError(
                code=code or ("AMC_UNAVAILABLE" if retryable else "AMC_VALIDATION"),
                message="boom",
                retryable=retryable,
            )
        }
    )
    await _publish(
        scheduler,
        ExecutionCompleted(
            execution_id=execution_id,
            origin=origin,
            status=status,
            instance_id="amc-inst-1",
            user_id="user-1",
            **outcome,
        ),
    )
    return execution_id


async def _run(scheduler: Scheduler, schedule_id: str, *states: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        runs = await scheduler.runs(schedule_id)
        if runs:
            found.update(runs[0])
        return bool(runs) and found["state"] in states

    await wait_until(reached, what=f"the run to reach {states}")
    return found


async def _dues(scheduler: Scheduler, schedule_id: str, count: int) -> list[ScheduleDue]:
    topic = scheduler.topics.name(ScheduleDue.topic)
    async with TopicReader(scheduler.bootstrap, topic) as reader:
        try:
            records = await reader.wait_for(
                lambda r: len(dues_of(r, schedule_id)) >= count, timeout_s=30
            )
        except AssertionError as missing:
            # Where it stopped: not fired, fired but not published, or published but not read.
            raise AssertionError(f"{missing}; {await _where(scheduler, schedule_id)}") from None
    return dues_of(records, schedule_id)


async def _where(scheduler: Scheduler, schedule_id: str) -> str:
    pool = scheduler.runtime.pool
    next_fire = await pool.fetchval(
        "SELECT next_fire_at FROM schedules WHERE id = $1", UUID(schedule_id)
    )
    runs = await pool.fetch(
        "SELECT fire_time, state FROM schedule_runs WHERE schedule_id = $1", UUID(schedule_id)
    )
    outbox = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE sent_at IS NULL) AS unsent, count(*) AS rows FROM outbox"
    )
    assert outbox is not None
    return (
        f"clock {scheduler.runtime.now()}, next fire {next_fire}, "
        f"runs {[(r['fire_time'], r['state']) for r in runs]}, "
        f"outbox {outbox['rows']} rows ({outbox['unsent']} unsent)"
    )


async def _create_due(scheduler: Scheduler, clock: ShiftedClock, **body: Any) -> dict[str, Any]:
    """A schedule created three seconds before its fire time (the server start takes longer
    than that, so the clock is set here; a busy machine can take a second to create it)."""
    clock.set(FIRE - timedelta(seconds=3))
    return await scheduler.create(**body)


async def test_a_retryable_failure_is_retried_as_the_next_attempt_and_succeeds_once(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await _create_due(
        scheduler,
        clock,
        cron="0 9 * * *",
        parameters={"day": "TODAY(-1)"},
        window={"type": "LOOKBACK", "days": 7},
        retry={"attempts": 3, "backoff_s": 0.2, "backoff_max_s": 1},
    )
    assert created["retry"] == {"attempts": 3, "backoff_s": 0.2, "backoff_max_s": 1.0}
    [first] = await _dues(scheduler, created["id"], 1)
    assert first.attempt == 1

    first_execution = await _outcome(scheduler, first.run_id, "FAILED", retryable=True)
    dues = await _dues(scheduler, created["id"], 2)
    second = dues[1]
    # The same fire time, run id and concrete values, one attempt higher.
    assert (second.run_id, second.fire_time, second.attempt) == (first.run_id, FIRE, 2)
    assert second.run == first.run
    assert second.origin == first.origin

    # A late (redelivered) failure of attempt 1 changes nothing.
    await _outcome(scheduler, first.run_id, "FAILED", execution_id=first_execution)
    await _outcome(scheduler, first.run_id, "SUCCEEDED")
    run = await _run(scheduler, created["id"], "SUCCEEDED")
    assert run["attempt"] == 2
    # A success for an earlier attempt after the run ended is not a second success.
    await _outcome(scheduler, first.run_id, "SUCCEEDED", execution_id=first_execution)
    stats = (await scheduler.http.get(f"/schedules/{created['id']}/stats")).json()
    assert (stats["succeeded"], stats["failed"], stats["runs"]) == (1, 0, 1)
    assert stats["consecutive_failures"] == 0
    assert len(await _dues(scheduler, created["id"], 2)) == 2


async def test_attempts_run_out_and_a_failure_that_is_not_retryable_is_not_retried(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await _create_due(scheduler, clock, retry={"attempts": 2, "backoff_s": 0.1})
    [first] = await _dues(scheduler, created["id"], 1)
    await _outcome(scheduler, first.run_id, "FAILED", retryable=True)
    await _dues(scheduler, created["id"], 2)
    await _outcome(scheduler, first.run_id, "FAILED", retryable=True)
    run = await _run(scheduler, created["id"], "FAILED")
    assert run["attempt"] == 2
    found = await scheduler.get(created["id"])
    assert found["consecutive_failures"] == 1  # one failed fire time, not two attempts

    other = await _create_due(
        scheduler, clock, cron="0 9 * * *", retry={"attempts": 3, "backoff_s": 0.1}
    )
    [due] = await _dues(scheduler, other["id"], 1)
    await _outcome(scheduler, due.run_id, "FAILED", retryable=False)
    run = await _run(scheduler, other["id"], "FAILED")
    assert run["attempt"] == 1
    assert len(await _dues(scheduler, other["id"], 1)) == 1


async def test_rerun_sends_failed_runs_again_and_never_a_succeeded_one(
    scheduler: Scheduler, clock: ShiftedClock
) -> None:
    created = await scheduler.create(
        cron="0 9 * * *", timezone="America/New_York", parameters={"d": "TODAY(-1)"}
    )
    # Two fire times run: 15 March fails, 16 March succeeds.
    # The clock first: a firing pass between the two would see the fire time a day old
    # (past the catch-up window) and skip it.
    clock.set(datetime(2024, 3, 14, 13, 0, 1, tzinfo=UTC))
    await scheduler.set_next_fire(created["id"], datetime(2024, 3, 14, 13, 0, tzinfo=UTC))
    [first] = await _dues(scheduler, created["id"], 1)
    await _outcome(scheduler, first.run_id, "FAILED")
    await _run(scheduler, created["id"], "FAILED")
    clock.set(datetime(2024, 3, 15, 13, 0, 1, tzinfo=UTC))
    scheduler.runtime.firer.wake()
    dues = await _dues(scheduler, created["id"], 2)
    await _outcome(scheduler, dues[1].run_id, "SUCCEEDED")
    await _run(scheduler, created["id"], "SUCCEEDED")

    response = await scheduler.http.post(
        f"/schedules/{created['id']}/rerun",
        json={"failed": True, "since": "2024-03-01T00:00:00Z"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["rerun"] == 1
    [rerun] = body["runs"]
    assert (rerun["id"], rerun["attempt"], rerun["state"]) == (str(first.run_id), 2, "EMITTED")
    dues = await _dues(scheduler, created["id"], 3)
    again = dues[2]
    assert (again.run_id, again.attempt, again.fire_time) == (first.run_id, 2, first.fire_time)
    # The parameters as first sent: the date of its own fire time, not of today.
    assert again.run.parameters == first.run.parameters == {"d": "2024-03-13"}

    # A second re-run while it is in flight picks nothing; nor does one after it succeeded.
    nothing = await scheduler.http.post(
        f"/schedules/{created['id']}/rerun", json={"since": "2024-03-01T00:00:00Z"}
    )
    assert nothing.json()["rerun"] == 0
    await _outcome(scheduler, first.run_id, "SUCCEEDED")
    runs = {r["id"]: r for r in await scheduler.runs(created["id"])}

    async def both_succeeded() -> bool:
        runs.update({r["id"]: r for r in await scheduler.runs(created["id"])})
        return all(r["state"] == "SUCCEEDED" for r in runs.values())

    await wait_until(both_succeeded, what="both runs to succeed")
    again_response = await scheduler.http.post(
        f"/schedules/{created['id']}/rerun", json={"since": "2024-03-01T00:00:00Z"}
    )
    assert again_response.json()["rerun"] == 0
    assert len(await _dues(scheduler, created["id"], 3)) == 3


@pytest.mark.parametrize(
    "code",
    # RESULTS_NOT_DOWNLOADABLE: AMC holds a succeeded run whose results went to another of its
    # output channels (the OpenAPI's outputChannels): a re-run would end the same way.
    ["DOWNLOAD_FAILED", "RESULTS_NOT_DOWNLOADABLE"],
)
async def test_a_run_whose_result_amc_may_hold_is_not_rerun(
    scheduler: Scheduler, clock: ShiftedClock, code: str
) -> None:
    created = await _create_due(scheduler, clock, retry={"attempts": 3, "backoff_s": 0.1})
    [due] = await _dues(scheduler, created["id"], 1)
    await _outcome(scheduler, due.run_id, "FAILED", code=code)
    run = await _run(scheduler, created["id"], "FAILED")
    assert (run["attempt"], run["error_code"]) == (1, code)
    response = await scheduler.http.post(
        f"/schedules/{created['id']}/rerun", json={"since": "2024-01-01T00:00:00Z"}
    )
    assert response.json()["rerun"] == 0
    assert len(await _dues(scheduler, created["id"], 1)) == 1
