"""Requests become exactly one AMC execution each, followed to the end, results downloaded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from amclocal.simulator import RouteKind, SimAccount, SimControl
from shared.contract import ExecutionCompleted, ExecutionStatusChanged, ExecutionSubmitted
from tests.integration.poller.conftest import (
    PollerFactory,
    TokenDesk,
    lwa_token,
    run_for,
    schedule_due,
)
from tests.support.kafka import TopicReader


async def test_same_schedule_due_three_times_creates_one_amc_execution(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await make_poller()
    await poller.give_token(sim_account.user_id, await lwa_token(simulator.base_url, sim_account))
    event = schedule_due(run_for(sim_account))
    await poller.send(event, event, event)

    rows = await poller.wait_terminal(1)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "SUCCEEDED"
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert len(creates) == 1
    assert creates[0].execution_id == row["amc_execution_id"]

    files = await asyncio.to_thread(_result_files, row["result_uri"])
    assert [name for name, _ in files] == ["part-00000.csv"]
    assert row["result_rows"] == 100
    assert row["result_bytes"] == len(files[0][1])
    assert len(files[0][1].splitlines()) == 101
    metadata = _directory(row["result_uri"]) / "metadata" / "workflowExecution.json"
    assert json.loads(metadata.read_text())["workflowExecutionId"] == row["amc_execution_id"]

    topics = [
        poller.topic(t) for t in (ExecutionSubmitted, ExecutionStatusChanged, ExecutionCompleted)
    ]
    async with TopicReader(poller.bootstrap, *topics) as reader:
        await reader.wait_for(lambda r: any(x.topic == topics[2] for x in r), what="completed")
        await reader.poll()
    completed = [ExecutionCompleted.from_bytes(r.value) for r in reader.of(topics[2])]
    assert len(completed) == 1
    done = completed[0]
    assert done.origin == event.origin
    assert done.status == "SUCCEEDED"
    assert done.instance_id == sim_account.instance_id
    assert done.user_id == sim_account.user_id
    assert done.amc_execution_id == row["amc_execution_id"]
    assert done.result is not None
    assert done.result.row_count == 100
    submitted = [ExecutionSubmitted.from_bytes(r.value) for r in reader.of(topics[0])]
    assert [s.amc_execution_id for s in submitted] == [row["amc_execution_id"]]
    changes = [ExecutionStatusChanged.from_bytes(r.value) for r in reader.of(topics[1])]
    assert all(c.origin == event.origin for c in changes)
    statuses = [c.status.value for c in changes]
    assert statuses[0] == "RECEIVED"
    assert statuses[-1] == "SUCCEEDED"
    assert "SUBMITTING" in statuses
    assert statuses.index("SUBMITTING") < statuses.index("SUCCEEDED")


async def test_token_is_requested_once_per_user_and_executions_resume(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    poller = await make_poller()
    async with TokenDesk(poller, simulator.base_url) as desk:
        desk.refresh_tokens[sim_account.user_id] = sim_account.refresh_token
        run = run_for(sim_account)
        await poller.send(*(schedule_due(run) for _ in range(4)))
        rows = await poller.wait_terminal(4)
    assert {r["status"] for r in rows} == {"SUCCEEDED"}
    assert [r.user_id for r in desk.requests] == [sim_account.user_id]


def _directory(uri: str) -> Path:
    """A file:// URI's directory (as_uri escapes the '=' of the partition names)."""
    return Path(unquote(urlparse(uri).path))


def _result_files(uri: str) -> list[tuple[str, bytes]]:
    directory = _directory(uri)
    return [(f.name, f.read_bytes()) for f in sorted(directory.iterdir()) if f.is_file()]
