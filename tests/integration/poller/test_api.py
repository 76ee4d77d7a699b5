"""/executions over real HTTP, and `amcctl executions` against it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from amclocal.simulator import SimAccount, SimControl, WorkflowBehavior
from services.amcctl import app as amcctl
from services.poller.app import app_for
from services.poller.runtime import build_runtime
from shared.contract import ExecutionCompleted
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.poller.conftest import (
    PollerHarness,
    SettingsFactory,
    eventually,
    external,
    lwa_token,
    run_for,
)
from tests.support.http import serve_app
from tests.support.kafka import TopicReader

API_KEY = "test-api-key-poller"


async def amcctl_json(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> Any:
    monkeypatch.setenv("AMCCTL_POLLER_URL", url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    # The CLI is synchronous; the server runs on this event loop, so call it from a thread.
    result = await asyncio.to_thread(CliRunner().invoke, amcctl, ["executions", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def amcctl_text(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> str:
    monkeypatch.setenv("AMCCTL_POLLER_URL", url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    result = await asyncio.to_thread(CliRunner().invoke, amcctl, ["executions", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_list_show_cancel_over_http_and_cli(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-long", running_seconds=120))
    runtime = build_runtime(poller_settings(api_key=API_KEY))
    app = app_for(runtime)
    await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as http:
        poller = PollerHarness(runtime, kafka_bootstrap, keys, sim_account)
        await poller.give_token(
            sim_account.user_id, await lwa_token(simulator.base_url, sim_account)
        )
        await eventually(lambda: poller.has_token(sim_account.user_id), what="token cached")
        long_run = external(run_for(sim_account, "wf-long"), "req-long")
        other = external(run_for(sim_account, "wf-long", user_id="user-2"), "req-other")
        await poller.send(long_run, other)

        headers = {"Authorization": f"Bearer {API_KEY}"}
        assert (await http.get("/executions")).status_code == 401

        async def running() -> Any:
            answer = await http.get(
                "/executions", params={"origin_id": "req-long"}, headers=headers
            )
            found = answer.json()["executions"]
            return found if found and found[0]["status"] == "RUNNING" else None

        [execution] = await eventually(running, what="req-long RUNNING")
        assert execution["origin"] == {"kind": "external", "id": "req-long"}
        assert execution["amc_execution_id"]

        listed = await amcctl_json(monkeypatch, url, "list", "--user", "user-2")
        assert [e["origin"]["id"] for e in listed["executions"]] == ["req-other"]
        assert listed["executions"][0]["status"] == "WAITING_FOR_TOKEN"
        by_status = await amcctl_json(monkeypatch, url, "list", "--status", "running")
        assert [e["execution_id"] for e in by_status["executions"]] == [execution["execution_id"]]
        shown = await amcctl_json(monkeypatch, url, "show", execution["execution_id"])
        assert shown["run"]["workflow_id"] == "wf-long"
        # Without --json: a table and a readable record, like the other groups.
        table = await amcctl_text(monkeypatch, url, "list", "--status", "running")
        assert table.splitlines()[0].startswith(f"{execution['execution_id']}  RUNNING")
        assert table.splitlines()[-1] == "1 execution(s) from offset 0"
        text = await amcctl_text(monkeypatch, url, "show", execution["execution_id"])
        assert f"at AMC     {execution['amc_execution_id']}  RUNNING" in text.splitlines()
        assert "window     2024-01-01T00:00:00Z .. 2024-01-08T00:00:00Z (UTC)" in text

        cancelled = await amcctl_json(monkeypatch, url, "cancel", execution["execution_id"])
        assert cancelled["cancel_requested"] is True

        topic = runtime.topics.name(ExecutionCompleted.topic)
        async with TopicReader(kafka_bootstrap, topic) as reader:
            [record] = await reader.wait_count(1)
        done = ExecutionCompleted.from_bytes(record.value)
        assert done.status == "CANCELLED"
        assert done.origin == long_run.origin
        assert done.error is not None
        assert done.error.code == "CANCELLED"
        assert done.error.retryable is False
        [at_amc] = await simulator.executions()
        assert at_amc.status == "CANCELLED"

        again = await http.post(f"/executions/{execution['execution_id']}/cancel", headers=headers)
        assert again.status_code == 409
        assert "already CANCELLED" in again.json()["detail"]
        missing = await http.get(
            "/executions/00000000-0000-0000-0000-000000000000", headers=headers
        )
        assert missing.status_code == 404
        bad = await http.get("/executions", params={"status": "DONE"}, headers=headers)
        assert bad.status_code == 422
        assert "status" in json.dumps(bad.json()["detail"])
        bad_id = await http.get("/executions/not-a-uuid", headers=headers)
        assert bad_id.status_code == 422

        # Cancelling before AMC has it needs no AMC call.
        queued = await http.post(
            f"/executions/{listed['executions'][0]['execution_id']}/cancel", headers=headers
        )
        assert queued.status_code == 202
        assert queued.json()["status"] == "CANCELLED"
        assert len(await simulator.executions()) == 1
        # One cancelled at AMC by the canceller, one by the API before AMC had it.
        assert poller.completed_count("CANCELLED") == 2
