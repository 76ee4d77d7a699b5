"""Whole workflow definitions and dry runs, over `amcctl` and the poller's API, against the
simulator (issue 20: "Pushing a workflow erases what we do not send", "Validate SQL without
spending the day's quota").

Sources: Amazon's OpenAPI (WorkflowManagementService_prod_3p.json): updateWorkflow takes "the
request body directly as the new workflow definition", the Workflow schema's fields, and
dryRun validates "without consuming quotas"; create-workflow.md: ARRAY parameters, the
aggregation threshold columns, and "Use the GET operation ... to retrieve the specific
workflow you want to update. Provide the updated values for the individual parameters".
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from amclocal.simulator import RouteKind, SimAccount, SimControl
from services.amcctl import app as amcctl
from shared.clients import AmcAccount, AmcClient, LwaClient, SavedWorkflow
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    PollerHarness,
    SettingsFactory,
    completed_events,
    external,
    registration,
    run_for,
    served_poller,
)
from tests.unit.poller.test_workflow_files import EVERY_FIELD

API_KEY = "test-api-key-definitions"


@dataclass
class Poller:
    harness: PollerHarness
    http: httpx.AsyncClient
    url: str


@pytest_asyncio.fixture(loop_scope="session")
async def poller(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> AsyncIterator[Poller]:
    # The other tool's calls do not take the poller's rate slots; AMC's request rate is not
    # what these tests are about.
    await simulator.configure(rate_limit_per_second=0)
    settings = poller_settings(api_key=API_KEY)
    async with served_poller(settings, simulator, sim_account, keys) as (harness, http, url):
        await http.post(
            "/instances",
            json=registration(sim_account),
        )
        yield Poller(harness, http, url)


@dataclass
class OtherTool:
    """Someone changing the workflow at AMC without us (AMC's UI, another tool)."""

    client: AmcClient
    token: str
    account: AmcAccount

    async def create(self, definition: dict[str, Any]) -> None:
        await self.client.create_workflow(
            self.token, self.account, SavedWorkflow.from_amc(definition)
        )

    async def get(self, workflow_id: str) -> dict[str, Any]:
        found = await self.client.get_workflow(self.token, self.account, workflow_id)
        return found.to_body()


@pytest_asyncio.fixture(loop_scope="session")
async def other_tool(
    simulator: SimControl, sim_account: SimAccount, sim_http: httpx.AsyncClient
) -> OtherTool:
    lwa = LwaClient(
        simulator.base_url, sim_account.client_id, sim_account.client_secret, http=sim_http
    )
    tokens = await lwa.refresh(sim_account.refresh_token)
    return OtherTool(
        AmcClient(simulator.base_url, sim_account.client_id, http=sim_http),
        tokens.access_token.get_secret_value(),
        AmcAccount(sim_account.instance_id, sim_account.advertiser_id, sim_account.marketplace_id),
    )


async def amcctl_run(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("AMCCTL_POLLER_URL", url)
    monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
    result = await asyncio.to_thread(CliRunner().invoke, amcctl, list(args))
    return result.exit_code, result.output


async def test_pull_then_push_changes_nothing_and_a_sql_edit_keeps_every_other_field(
    poller: Poller,
    simulator: SimControl,
    sim_account: SimAccount,
    other_tool: OtherTool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = sim_account.instance_id
    await other_tool.create(EVERY_FIELD)
    workflow = ("--instance", instance, "--id", "every-field")
    pulled = tmp_path / "every-field.sql"
    code, out = await amcctl_run(
        monkeypatch, poller.url, "workflows", "pull", *workflow, "-o", str(pulled)
    )
    assert code == 0, out
    before = len(await simulator.requests(instance, RouteKind.WORKFLOWS))

    code, out = await amcctl_run(
        monkeypatch, poller.url, "workflows", "push", str(pulled), *workflow
    )
    assert code == 0, out
    assert out.strip() == f"unchanged: every-field on {instance}, version 1"
    sent = [r.method for r in (await simulator.requests(instance, RouteKind.WORKFLOWS))[before:]]
    assert sent == ["GET", "GET"]  # plan and push read it; nothing was written at AMC
    assert await other_tool.get("every-field") == EVERY_FIELD

    # A push that changes only the SQL keeps the rest, and its diff is the SQL alone.
    edited = pulled.read_text().replace("FROM dsp_impressions", "FROM dsp_clicks")
    pulled.write_text(edited)
    code, out = await amcctl_run(
        monkeypatch, poller.url, "workflows", "push", str(pulled), *workflow, "--yes"
    )
    assert code == 0, out
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == ["-FROM dsp_impressions", "+FROM dsp_clicks"]
    expected = copy.deepcopy(EVERY_FIELD)
    expected["sqlQuery"] = EVERY_FIELD["sqlQuery"].replace("dsp_impressions", "dsp_clicks")
    assert await other_tool.get("every-field") == expected

    # A file with the SQL alone (an older file) changes the SQL and keeps the rest too.
    sql_only = tmp_path / "sql-only.sql"
    sql_only.write_text("SELECT 1 FROM dsp_clicks\n")
    code, out = await amcctl_run(
        monkeypatch, poller.url, "workflows", "push", str(sql_only), *workflow, "--yes"
    )
    assert code == 0, out
    expected["sqlQuery"] = "SELECT 1 FROM dsp_clicks"
    assert await other_tool.get("every-field") == expected

    # A field named null goes; the diff shows every field it touches, by AMC's name.
    sql_only.write_text("-- @filteredReasonColumn null\n-- @param plain STRING 5\nSELECT 1\n")
    code, out = await amcctl_run(
        monkeypatch, poller.url, "workflows", "push", str(sql_only), *workflow, "--yes"
    )
    assert code == 0, out
    assert "--- @filteredReasonColumn filtered_reason" in out
    assert "-SELECT 1 FROM dsp_clicks" in out
    now = await other_tool.get("every-field")
    assert "filteredReasonColumn" not in now
    assert now["sqlQuery"] == "SELECT 1"
    # The file's parameter list is the list; the attributes it leaves out are AMC's.
    assert now["inputParameters"] == [{"name": "plain", "dataType": "STRING", "defaultValue": "5"}]
    assert now["outputFormat"] == EVERY_FIELD["outputFormat"]

    shown = (await poller.http.get(f"/workflows/{instance}/every-field")).json()
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3, 4]
    assert shown["versions"][0]["settings"]["outputColumns"] == EVERY_FIELD["outputColumns"]


async def test_push_refuses_what_amc_does_not_publish_naming_the_field(
    poller: Poller, sim_account: SimAccount
) -> None:
    instance = sim_account.instance_id
    bad: list[tuple[dict[str, Any], str]] = [
        ({"settings": {"outputFormat": {"lineSeparator": "\n"}}}, "lineSeparator"),
        ({"settings": {"privacyFilteringBehavior": "HIDE"}}, "privacyFilteringBehavior"),
        ({"settings": {"outputColumn": []}}, "outputColumn"),
        ({"input_parameters": [{"name": "a", "dataType": "NUMBER"}]}, "is not one of AMC's"),
        (
            {"input_parameters": [{"name": "a", "dataType": {"type": "ARRAY"}}]},
            "is not one of AMC's",
        ),
    ]
    for change, named in bad:
        body = {"sql_query": "SELECT 1", "author": "ana", **change}
        answer = await poller.http.put(f"/workflows/{instance}/w", json=body)
        assert answer.status_code == 422, answer.text
        assert named in answer.text


async def test_validate_shows_amcs_reason_and_leaves_the_daily_cap_alone(
    poller: Poller,
    simulator: SimControl,
    sim_account: SimAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = sim_account.instance_id
    # One execution a day at AMC: a dry run that counted would leave none for the real run.
    await simulator.configure(daily_execution_cap=1)
    broken = tmp_path / "broken.sql"
    broken.write_text("SELECT campaign FROM dsp_impressions WHERE x = CUSTOM_PARAMETER('cmp')\n")
    check = ("workflows", "validate", "--instance", instance)
    code, out = await amcctl_run(monkeypatch, poller.url, *check, str(broken))
    assert code == 1, out
    assert out.startswith("invalid (FAILED): Query compilation failed: CUSTOM_PARAMETER('cmp')")

    # The parameter defined but given no value, then given one: AMC's verdict each time.
    broken.write_text("-- @param cmp STRING\n" + broken.read_text())
    code, out = await amcctl_run(monkeypatch, poller.url, *check, str(broken))
    assert code == 1, out
    assert "cmp has no defaultValue and no value in parameterValues" in out
    code, out = await amcctl_run(monkeypatch, poller.url, *check, str(broken), "--value", "cmp=a")
    assert code == 0, out
    assert out.startswith("valid: AMC's dry run ")

    creates = await simulator.requests(instance, RouteKind.CREATE)
    assert [c.flags for c in creates] == [{"dryRun": True}] * 3
    assert await poller.harness.rows() == []  # no execution of ours, nothing to count

    # The day's one execution is still there for a real run.
    await poller.harness.send(external(run_for(sim_account)))
    [done] = await completed_events(poller.harness, 1)
    assert done.status == "SUCCEEDED"
