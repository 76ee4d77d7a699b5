"""POLLER_HISTORY_RETENTION_DAYS: finished executions past it are deleted, nothing else."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from services.poller import retention, store
from services.poller.runtime import PollerRuntime
from shared.contract import ExecutionStatus, Origin, OriginKind
from shared.db import prune
from shared.db.prune import turn
from tests.integration.poller.conftest import (
    PollerFactory,
    PollerHarness,
    eventually,
    plain_run,
)


async def _execution(poller: PollerHarness, *, age_days: float, finished: bool) -> UUID:
    execution_id = uuid4()
    async with poller.runtime.pool.acquire() as conn, conn.transaction():
        await store.insert_execution(
            conn,
            execution_id=execution_id,
            origin=Origin(kind=OriginKind.EXTERNAL, id=uuid4().hex),
            attempt=1,
            request_event_id=uuid4(),
            run=plain_run("history-user", "amc-history"),
            status=ExecutionStatus.QUEUED,
            waiting_token=False,
        )
        # A live row is parked a day ahead, so no loop of this poller takes it meanwhile.
        await conn.execute(
            """UPDATE executions
               SET created_at = now() - make_interval(secs => $2 * 86400),
                   stage = CASE WHEN $3 THEN 'done' ELSE stage END,
                   status = CASE WHEN $3 THEN 'SUCCEEDED' ELSE status END,
                   next_action_at = now() + interval '1 day'
               WHERE execution_id = $1""",
            execution_id,
            age_days,
            finished,
        )
    return execution_id


async def _pass(poller: PollerHarness) -> None:
    """One retention pass here, once the poller's own pass at start is over (a pass that finds
    another running skips its turn; the next one is an hour away)."""

    async def start_pass_over() -> bool:
        async with poller.runtime.pool.acquire() as conn, turn(conn, retention.TURN) as mine:
            return mine

    await eventually(start_pass_over, 15.0, "the start's retention pass over")
    runtime = poller.runtime
    assert isinstance(runtime, PollerRuntime)
    await retention.delete_old(await runtime.context())


async def _ids(poller: PollerHarness) -> set[UUID]:
    return {row["execution_id"] for row in await poller.rows()}


async def test_finished_executions_past_the_horizon_are_deleted(
    make_poller: PollerFactory,
) -> None:
    poller = await make_poller(history_retention_days=30, retention_interval_s=0.2)
    old_finished = await _execution(poller, age_days=31, finished=True)
    old_live = await _execution(poller, age_days=31, finished=False)
    recent_finished = await _execution(poller, age_days=29, finished=True)

    async def pruned() -> bool:
        return old_finished not in await _ids(poller)

    await eventually(pruned, 15.0, "the old finished execution deleted")
    assert await _ids(poller) == {old_live, recent_finished}


async def test_without_the_setting_history_is_kept(make_poller: PollerFactory) -> None:
    # Results retention alone runs the same pass: it must leave the executions alone.
    poller = await make_poller(results_retention_days=1)
    old_finished = await _execution(poller, age_days=400, finished=True)
    await _pass(poller)
    assert old_finished in await _ids(poller)


async def test_a_pass_deletes_in_batches_until_none_is_left(
    make_poller: PollerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    poller = await make_poller(history_retention_days=14)
    monkeypatch.setattr(prune, "BATCH", 2)
    old = {await _execution(poller, age_days=20, finished=True) for _ in range(5)}
    kept = await _execution(poller, age_days=1, finished=True)
    await _pass(poller)
    assert not old & await _ids(poller)
    assert kept in await _ids(poller)
