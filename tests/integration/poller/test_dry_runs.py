"""The dry_run run option: AMC's dryRun ("validate workflow executions (e.g., the sqlQuery)
without consuming quotas or compute resources. The workflow execution will not generate
output results", Amazon's OpenAPI). A dry run is claimed outside the daily cap, is never held
for the next day, downloads nothing, and its FAILED is AMC's verdict, not retryable."""

from __future__ import annotations

from typing import Any

from amclocal.simulator import RouteKind, SimAccount, SimControl
from shared.contract import RunOptions, WorkflowRun
from shared.crypto import KeyRing
from tests.integration.poller.conftest import (
    SettingsFactory,
    eventually,
    external,
    run_for,
    served_poller,
)


def dry_adhoc(account: SimAccount, sql: str) -> WorkflowRun:
    fields: dict[str, Any] = {
        "workflow_id": None,
        "sql_query": sql,
        "options": RunOptions(dry_run=True),
    }
    return run_for(account, **fields)


async def test_dry_runs_pass_a_full_day_and_end_at_amcs_verdict(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    await simulator.configure(daily_execution_cap=1)
    settings = poller_settings(api_key="dry-run-key", daily_executions_per_instance=1)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        await poller.send(external(run_for(sim_account)))
        await poller.wait_terminal(1)  # the day's one execution is spent

        broken = "SELECT campaign FROM dsp_impressions WHERE campaign = CUSTOM_PARAMETER('c')"
        await poller.send(
            external(dry_adhoc(sim_account, broken), "dry-broken"),
            external(
                dry_adhoc(sim_account, "SELECT 1"),
                "dry-fine",
            ),
            external(run_for(sim_account), "real-held"),
        )

        async def dry_ended_real_held() -> dict[str, dict[str, Any]] | None:
            rows = {r["origin_id"]: r for r in await poller.rows()}
            ended = all(
                rows.get(k, {}).get("status") in ("SUCCEEDED", "FAILED")
                for k in ("dry-broken", "dry-fine")
            )
            held = rows.get("real-held", {}).get("waiting_reason") is not None
            return rows if ended and held else None

        rows = await eventually(dry_ended_real_held, what="dry runs ended, the real run held")
        failed = rows["dry-broken"]
        assert failed["status"] == "FAILED"
        assert failed["error_code"] == "AMC_VALIDATION"
        assert failed["error_retryable"] is False
        assert "CUSTOM_PARAMETER('c')" in failed["error_message"]
        fine = rows["dry-fine"]
        assert fine["status"] == "SUCCEEDED"
        assert fine["result_uri"] is None  # "will not generate output results"
        assert rows["real-held"]["status"] == "QUEUED"

        creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        assert sorted(bool(c.flags and c.flags.get("dryRun")) for c in creates) == [
            False,
            True,
            True,
        ]
        assert all(c.status == 200 for c in creates)  # AMC counted no dry run either
        urls = await simulator.requests(sim_account.instance_id, RouteKind.DOWNLOAD_URLS)
        assert len({u.execution_id for u in urls}) == 1  # only the real run's results
        shown = (await http.get(f"/executions/{fine['execution_id']}")).json()
        assert shown["status"] == "SUCCEEDED"
