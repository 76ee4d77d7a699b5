"""The console's charts in a real headless Chromium (Debian's package, driven by Playwright),
on a real poller whose history is seeded: one run through the simulated AMC today, and
finished runs on earlier days written into the poller's table as it writes them. The chart
is drawn (an SVG with its series, styled by /charts.css under the console's CSP), and the
numbers in the table beside it equal the database's and the poller API's."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from amclocal.simulator import SimAccount, SimControl, WorkflowBehavior
from services.console.history import OUTCOMES
from shared.crypto import KeyRing
from tests.integration.console.harness import API_KEY, running_console
from tests.integration.poller.conftest import (
    SettingsFactory,
    completed_events,
    external,
    registration,
    run_for,
    served_poller,
)
from tests.integration.poller.test_result_console import _shot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WORKFLOW = "wf-chart"
# (days before today, outcome, minutes at AMC); 31 days back is outside the chart's 30 days.
SEEDED = [
    (1, "SUCCEEDED", 4),
    (1, "FAILED", 2),
    (3, "SUCCEEDED", 7),
    (3, "SUCCEEDED", 9),
    (3, "TIMED_OUT", 30),
    (10, "CANCELLED", 1),
    (29, "SUCCEEDED", 12),
    (31, "SUCCEEDED", 5),
]


async def _seed(pool: Any, template: str) -> None:
    """Finished runs copied from the real one, as the poller leaves a finished run."""
    midnight = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    for n, (days, outcome, minutes) in enumerate(SEEDED):
        completed = midnight - timedelta(days=days) + timedelta(hours=12, minutes=n)
        await pool.execute(
            """INSERT INTO executions (execution_id, origin_kind, origin_id, attempt,
                   request_event_id, user_id, instance_id, workflow_id, run, status, stage,
                   next_action_at, poll_count, amc_execution_id, amc_status, submitted_at,
                   error_code, error_message, error_retryable, created_at, updated_at,
                   completed_at, trace_context, workflow_version)
               SELECT gen_random_uuid(), 'external', 'seed-' || $2::text, 1,
                   gen_random_uuid(), user_id, instance_id, workflow_id, run, $3, 'done',
                   $4::timestamptz, 3, 'seed-amc-' || $2::text, $3,
                   $4::timestamptz - $5::int * interval '1 minute',
                   CASE WHEN $3 = 'FAILED' THEN 'QUERY_FAILED' END,
                   CASE WHEN $3 = 'FAILED' THEN 'seeded failure' END,
                   CASE WHEN $3 = 'FAILED' THEN false END,
                   $4::timestamptz - $5::int * interval '1 minute', $4, $4, trace_context,
                   workflow_version
               FROM executions WHERE execution_id = $1::uuid""",
            template,
            str(n),
            outcome,
            completed,
            minutes,
        )


async def _table(page: Page, key: str) -> list[list[str]]:
    rows = page.locator(f"#{key}-table tbody tr")
    return [
        [t.strip() for t in await rows.nth(i).locator("th, td").all_inner_texts()]
        for i in range(await rows.count())
    ]


async def _drawn(page: Page, key: str, series: int) -> list[str]:
    """The values pygal drew for one series of a chart."""
    values = page.locator(f"#chart-{key} .serie-{series} desc.value")
    return [t.strip() for t in await values.all_text_contents()]


async def test_charts_of_a_seeded_history_equal_the_databases_counts(
    poller_settings: SettingsFactory,
    simulator: SimControl,
    sim_account: SimAccount,
    keys: KeyRing,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    await simulator.configure(rate_limit_per_second=0)
    await simulator.set_workflow(WorkflowBehavior(workflow_id=WORKFLOW, rows=5))
    settings = poller_settings(api_key=API_KEY)
    instance = sim_account.instance_id
    async with served_poller(settings, simulator, sim_account, keys) as (poller, http, url):
        added = await http.post(
            "/instances",
            json=registration(sim_account, instance_id=instance),
        )
        assert added.status_code == 201, added.text
        capped = await http.patch(f"/instances/{instance}", json={"max_daily_executions": 40})
        assert capped.status_code == 200, capped.text
        pushed = await http.put(
            f"/workflows/{instance}/{WORKFLOW}", json={"sql_query": "SELECT 1", "author": "ana"}
        )
        assert pushed.status_code == 200, pushed.text
        await poller.send(external(run_for(sim_account, WORKFLOW)))
        [done] = await completed_events(poller, 1)
        assert done.status == "SUCCEEDED"
        pool = poller.runtime.pool
        await _seed(pool, str(done.execution_id))

        days = [
            datetime.combine(datetime.now(UTC).date() - timedelta(days=29 - i), time(), UTC)
            for i in range(30)
        ]
        counted = await pool.fetch(
            """SELECT (completed_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n
               FROM executions WHERE completed_at > $1 GROUP BY 1, 2""",
            days[0],
        )
        by_day = {(r["day"].isoformat(), r["status"]): r["n"] for r in counted}
        expected = [
            [
                d.date().isoformat(),
                *(str(by_day.get((d.date().isoformat(), o), 0)) for o in OUTCOMES),
            ]
            for d in days
        ]
        # The seeds are where they were meant to be (the check is not of an empty history).
        assert sum(by_day.values()) == 8
        today = (await http.get(f"/instances/{instance}")).json()["today"]
        assert today["used"] == 1
        assert today["daily_cap"] == 40

        async with (
            running_console(uid, database_url, kafka_bootstrap, poller_url=url) as console,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = await browser.new_page(base_url=console.url)
            refused: list[str] = []

            def on_console(message: ConsoleMessage) -> None:
                if "Content Security Policy" in message.text:
                    refused.append(message.text)

            page.on("console", on_console)
            await page.goto("/")
            await page.get_by_label("Your name").fill("chart reader")
            await page.get_by_label("Services' API key").fill(API_KEY)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

            # Runs per day: the table equals the database's counts, the chart drew them.
            svg = page.locator("#chart-runs-per-day")
            await expect(svg).to_be_visible()
            await expect(svg).to_have_attribute("role", "img")
            await expect(page.locator("#chart-runs-per-day-title")).to_have_text(
                "Runs per day by outcome, last 30 days (UTC)"
            )
            await expect(page.locator("#runs-per-day-table caption")).to_have_text(
                "Runs per day by outcome, last 30 days (UTC)"
            )
            assert await _table(page, "runs-per-day") == expected
            for i, outcome in enumerate(OUTCOMES):
                assert await _drawn(page, "runs-per-day", i) == [row[1 + i] for row in expected]
                await expect(svg.locator(".legends")).to_contain_text(outcome)
            # /charts.css applies (the CSP allows no inline style): bars in the outcome's colour.
            bar = svg.locator(".serie-0 rect.rect").last
            assert await bar.evaluate("r => getComputedStyle(r).fill") == "rgb(46, 125, 50)"

            # Each instance today against its cap, as the poller's GET /instances/{id} says.
            assert await _table(page, "daily-cap") == [[instance, "1", "40"]]
            assert await _drawn(page, "daily-cap", 0) == ["1"]
            assert await _drawn(page, "daily-cap", 1) == ["39"]

            await _shot(page, "overview-charts")
            # Phone width: the SVG scales into the page instead of widening it.
            await page.set_viewport_size({"width": 390, "height": 844})
            await _shot(page, "overview-charts-phone")
            box = await svg.bounding_box()
            assert box is not None
            assert box["width"] <= 390
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            await page.set_viewport_size({"width": 1280, "height": 720})

            # The workflow's run durations, from the times the database holds.
            finished = await pool.fetch(
                """SELECT execution_id, status, submitted_at, completed_at FROM executions
                   WHERE workflow_id = $1 ORDER BY completed_at""",
                WORKFLOW,
            )
            await page.goto(f"/workflows/{instance}/{WORKFLOW}")
            await expect(page.locator("#chart-run-durations")).to_be_visible()
            shown = await _table(page, "run-durations")
            assert [(r[1], r[2], r[3]) for r in shown] == [
                (
                    f["status"],
                    f"{(f['completed_at'] - f['submitted_at']).total_seconds() / 60:.2f}",
                    str(f["execution_id"]),
                )
                for f in finished
            ]
            assert len(shown) == len(SEEDED) + 1
            await _shot(page, "workflow-durations")
            assert await _drawn(page, "run-durations", 0) == [f"{float(r[2]):g}" for r in shown]
            assert refused == []
            await browser.close()
