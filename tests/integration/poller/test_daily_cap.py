"""AMC's daily cap on executions per instance: runs past it wait, visibly, for the next day.

Amazon documents the cap (createWorkflowExecution: "up to 30 times per day, per AMC instance")
but not its refusal; the poller counts its own submissions and holds the rest back, and a
refusal it did not see coming (another tool used the day's executions) is waited out too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from amclocal.simulator import RouteKind, SimAccount, SimControl
from services.amcctl import app as amcctl
from services.poller.logic import LONG_RETRY_AFTER_S
from shared.contract import Origin, OriginKind, WeekRequested, WorkflowRun
from shared.crypto import KeyRing
from tests.integration.collector.harness import (
    API_KEY,
    collection_body,
    running_collector,
    settings_for,
)
from tests.integration.poller.conftest import (
    PollerFactory,
    SettingsFactory,
    eventually,
    external,
    lwa_token,
    registration,
    run_for,
    schedule_due,
    served_poller,
    started,
)
from tests.support.http import json_of


def next_midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


async def test_runs_past_the_cap_wait_for_the_next_day_then_run(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
) -> None:
    await simulator.configure(daily_execution_cap=2)
    settings = poller_settings(api_key="cap-test-key", daily_executions_per_instance=2)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, _):
        await poller.send(*(external(run_for(sim_account)) for _ in range(4)))

        async def two_done_two_held() -> list[dict[str, Any]] | None:
            rows = await poller.rows()
            done = [r for r in rows if r["status"] == "SUCCEEDED"]
            held = [r for r in rows if r["waiting_reason"] is not None]
            return held if len(done) == 2 and len(held) == 2 else None

        held = await eventually(two_done_two_held, what="two runs done, two held back")
        view = (await http.get(f"/executions/{held[0]['execution_id']}")).json()
        assert view["status"] == "QUEUED"
        assert "waiting for tomorrow's cap: 2/2 used" in view["waiting_reason"]
        assert "00:00 UTC" in view["waiting_reason"]
        assert datetime.fromisoformat(view["next_action_at"]) == next_midnight_utc()
        parked = poller.runtime.registry.get_sample_value(
            "amc_poller_daily_cap_parked_total", {"amc_instance": sim_account.instance_id}
        )
        assert parked == 2
        # Held back, not refused: AMC saw two creations and no third.
        creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        assert [c.status for c in creates] == [200, 200]

        # The next UTC day, for the poller: today's submissions become yesterday's and the
        # held runs fall due. (The simulator's clock cannot move a day, so its cap is lifted.)
        await simulator.configure(daily_execution_cap=0)
        await poller.runtime.pool.execute(
            """UPDATE executions SET submit_intent_at = submit_intent_at - interval '1 day',
                                     next_action_at = LEAST(next_action_at, now())"""
        )
        rows = await poller.wait_terminal(4)
        assert {r["status"] for r in rows} == {"SUCCEEDED"}
        assert all(r["waiting_reason"] is None for r in rows)


async def test_a_refusal_for_the_cap_is_waited_out_not_retried(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Another tool used the instance's day: AMC refuses although the poller counted one.
    await simulator.configure(daily_execution_cap=1)
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account)), external(run_for(sim_account)))

    async def refused_and_queued() -> list[dict[str, Any]] | None:
        rows = await poller.rows()
        queued = [r for r in rows if r["status"] == "QUEUED" and r["submit_intent_at"]]
        return queued if len(queued) == 1 and len(rows) == 2 else None

    [row] = await eventually(refused_and_queued, what="the refused run queued again")
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert sorted(c.status or 0 for c in creates) == [200, 429]
    # It waits for the Retry-After AMC gave (the next day), not a failure or a retry loop.
    assert row["next_action_at"] >= next_midnight_utc() - timedelta(seconds=30)
    assert row["error_code"] is None


def week(run: WorkflowRun, collection_id: UUID, daily_share: int | None = None) -> WeekRequested:
    week_id = uuid4()
    return WeekRequested(
        collection_id=collection_id,
        week_id=week_id,
        week_start=date(2024, 1, 1),
        week_end=date(2024, 1, 7),
        attempt=1,
        origin=Origin(kind=OriginKind.COLLECTION, id=str(week_id)),
        run=run,
        daily_share=daily_share,
    )


async def test_scheduled_and_external_runs_spend_the_cap_before_collection_weeks(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    # Issue 20: one collection must not take the day's executions before the day's reports.
    # The weeks arrive first (oldest), the reports after; all become submittable at once
    # when the user's token arrives, so the claim alone decides who gets the three left.
    poller = await make_poller(daily_executions_per_instance=3, max_running_per_instance=10)
    run = run_for(sim_account)
    collection = uuid4()
    await poller.send(*(week(run, collection) for _ in range(3)))
    await poller.send(external(run), schedule_due(run), external(run))

    async def all_waiting() -> bool:
        rows = await poller.rows()
        return len(rows) == 6 and all(r["status"] == "WAITING_FOR_TOKEN" for r in rows)

    await eventually(all_waiting, what="six runs waiting for a token")
    await poller.give_token(sim_account.user_id, await lwa_token(simulator.base_url, sim_account))

    async def three_sent_three_held() -> list[dict[str, Any]] | None:
        rows = await poller.rows()
        held = [r for r in rows if r["waiting_reason"] is not None]
        sent = [r for r in rows if r["submitted_at"] is not None]
        return rows if len(held) == 3 and len(sent) == 3 else None

    rows = await eventually(three_sent_three_held, what="three runs sent, three held")
    sent = {r["origin_kind"] for r in rows if r["submitted_at"] is not None}
    held = [r for r in rows if r["waiting_reason"] is not None]
    assert sent == {"external", "schedule"}
    assert {r["origin_kind"] for r in held} == {"collection"}
    assert all(r["status"] == "QUEUED" for r in held)
    assert all("waiting for tomorrow's cap: 3/3 used" in r["waiting_reason"] for r in held)
    assert all(r["next_action_at"] == next_midnight_utc() for r in held)
    creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
    assert len(creates) == 3


async def test_a_collection_spends_only_its_daily_share_and_the_instance_shows_the_day(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = poller_settings(api_key="share-test-key", max_running_per_instance=10)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, url):
        added = await http.post("/instances", json=registration(sim_account))
        assert added.status_code == 201, added.text
        run = run_for(sim_account)
        shared, unshared = uuid4(), uuid4()
        await poller.send(*(week(run, shared, daily_share=2) for _ in range(4)))
        await poller.send(week(run, unshared), external(run))

        async def four_done_two_held() -> list[dict[str, Any]] | None:
            rows = await poller.rows()
            done = [r for r in rows if r["status"] == "SUCCEEDED"]
            held = [r for r in rows if r["waiting_reason"] is not None]
            return held if len(done) == 4 and len(held) == 2 else None

        held = await eventually(four_done_two_held, what="four runs done, two weeks held")
        assert {r["share_group"] for r in held} == {str(shared)}
        for row in held:
            assert row["status"] == "QUEUED"
            assert row["next_action_at"] == next_midnight_utc()
            assert row["waiting_reason"].startswith(
                f"waiting for tomorrow's share: collection {shared} has used 2/2"
            )
        view = (await http.get(f"/instances/{sim_account.instance_id}")).json()
        assert view["today"] == {
            "daily_cap": 30,
            "used": 4,
            "used_by_kind": {"collection": 3, "external": 1},
            "remaining": 26,
            "waiting_for_tomorrow": 2,
            "waiting_by_kind": {"collection": 2},
        }
        monkeypatch.setenv("AMCCTL_POLLER_URL", url)
        monkeypatch.setenv("AMCCTL_API_KEY", "share-test-key")
        shown = await asyncio.to_thread(
            CliRunner().invoke, amcctl, ["instances", "show", sim_account.instance_id]
        )
        assert shown.exit_code == 0, shown.output
        assert (
            "today      4/30 executions used since 00:00 UTC (collection 3, external 1)"
            in shown.output
        )
        assert "tomorrow   2 run(s) waiting for the next UTC day (collection 2)" in shown.output
        creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        assert len(creates) == 4


async def test_amcs_own_refusal_for_the_day_says_so_on_the_run(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    if next_midnight_utc() - datetime.now(UTC) < timedelta(seconds=LONG_RETRY_AFTER_S + 60):
        pytest.skip("AMC's Retry-After to 00:00 UTC is short this close to midnight")
    # Another tool spent the instance's cap: AMC refuses with a Retry-After to its next day.
    await simulator.configure(daily_execution_cap=1)
    poller = await started(make_poller, simulator, sim_account)
    await poller.send(external(run_for(sim_account)), external(run_for(sim_account)))

    async def refused() -> dict[str, Any] | None:
        rows = await poller.rows()
        waiting = [r for r in rows if r["status"] == "QUEUED" and r["waiting_reason"]]
        return waiting[0] if waiting else None

    row = await eventually(refused, what="the refused run waiting with a reason")
    reason = row["waiting_reason"]
    assert reason.startswith("AMC refused the submission (429) and asked to wait")
    assert f"until {next_midnight_utc():%Y-%m-%d %H:%M} UTC" in reason
    assert "this service counts 2/30 today" in reason
    assert "another tool" in reason


async def test_a_collection_with_a_share_runs_over_days_with_its_estimate(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real collector and poller on one broker: six weeks at two a day take three days.
    body = collection_body(
        user_id=sim_account.user_id,
        instance_id=sim_account.instance_id,
        advertiser_id=sim_account.advertiser_id,
        marketplace_id=sim_account.marketplace_id,
        workflow_id="wf-daily",
        start_date="2024-01-01",
        end_date="2024-02-11",
        daily_share=2,
    )
    settings = poller_settings(api_key="share-days-key", max_running_per_instance=10)
    async with (
        served_poller(settings, simulator, sim_account, keys) as (poller, _, _),
        running_collector(settings_for(uid, database_url, kafka_bootstrap)) as collector,
    ):
        created = json_of(await collector.http.post("/collections", json=body), 201)
        assert created["daily_share"] == 2
        assert created["progress"]["days_at_share"] == 3
        assert created["progress"]["cap_estimate"] == "6 week(s) at 2 a day: 3 day(s)"

        async def day(done: int) -> dict[str, Any]:
            """Wait until `done` weeks succeeded and the rest wait for tomorrow's share."""

            async def settled() -> dict[str, Any] | None:
                found = await collector.get(created["id"])
                rows = await poller.rows()
                held = [r for r in rows if r["waiting_reason"] is not None]
                counts = found["progress"]["counts"]
                if counts["SUCCEEDED"] == done and len(held) == 6 - done:
                    return found
                return None

            found: dict[str, Any] = await eventually(settled, what=f"{done} weeks done")
            return found

        first = await day(2)
        assert first["progress"]["cap_estimate"] == "4 week(s) at 2 a day: 2 day(s)"
        monkeypatch.setenv("AMCCTL_COLLECTOR_URL", collector.url)
        monkeypatch.setenv("AMCCTL_API_KEY", API_KEY)
        shown = await asyncio.to_thread(
            CliRunner().invoke, amcctl, ["collections", "show", created["id"]]
        )
        assert shown.exit_code == 0, shown.output
        assert "2 submitted a day (its share of the instance's daily cap)" in shown.output
        assert "(4 week(s) at 2 a day: 2 day(s))" in shown.output
        # The estimate is at least the day the share still needs (the next day's weeks).
        assert first["progress"]["estimated_seconds_left"] >= 86400

        async def next_day() -> None:
            await poller.runtime.pool.execute(
                """UPDATE executions SET submit_intent_at = submit_intent_at - interval '1 day',
                                         next_action_at = LEAST(next_action_at, now())"""
            )

        await next_day()
        second = await day(4)
        assert second["progress"]["cap_estimate"] == "2 week(s) at 2 a day: 1 day(s)"
        await next_day()
        finished = await collector.wait_status(created["id"], "COMPLETED")
        assert finished["progress"]["counts"]["SUCCEEDED"] == 6
        creates = await simulator.requests(sim_account.instance_id, RouteKind.CREATE)
        assert len(creates) == 6


async def test_an_instance_without_a_cap_has_no_share_to_enforce(
    make_poller: PollerFactory, simulator: SimControl, sim_account: SimAccount
) -> None:
    await simulator.configure(daily_execution_cap=0)
    poller = await started(make_poller, simulator, sim_account, daily_executions_per_instance=0)
    collection = uuid4()
    await poller.send(*(week(run_for(sim_account), collection, daily_share=1) for _ in range(3)))
    rows = await poller.wait_terminal(3)
    assert [r["status"] for r in rows] == ["SUCCEEDED"] * 3
    assert all(r["waiting_reason"] is None for r in rows)
