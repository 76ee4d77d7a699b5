"""A schedule's recent outcomes as a strip in the console, in a real headless Chromium: runs
seeded into the scheduler's table as it keeps them, the strip drawn with one cell per run in
its state's series, and the table beside it equal to the scheduler API's runs."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import ConsoleMessage, async_playwright, expect

from services.console.history import RUN_STATES
from tests.integration.console.harness import API_KEY, running_console
from tests.integration.scheduler.harness import (
    ShiftedClock,
    running_scheduler,
    schedule_body,
    settings_for,
)
from tests.support.http import json_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
# Oldest first: what each daily run came to.
SEEDED = ["SUCCEEDED", "FAILED", "SKIPPED", "SUCCEEDED", "TIMED_OUT", "CANCELLED", "RETRYING"]


async def test_a_schedules_outcome_strip_equals_its_runs(
    database_url: str, kafka_bootstrap: str
) -> None:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    uid = f"t{uuid.uuid4().hex[:10]}"
    settings = settings_for(uid, database_url, kafka_bootstrap, api_key=API_KEY)
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    # Firing at a fixed past instant, consuming nothing: the seeded runs stay as written.
    async with running_scheduler(settings, now=ShiftedClock(NOW), consume=False) as scheduler:
        created = json_of(
            await scheduler.http.post("/schedules", json=schedule_body(), headers=bearer), 201
        )
        schedule_id = uuid.UUID(created["id"])
        for n, state in enumerate(SEEDED):
            fire = NOW - timedelta(days=len(SEEDED) - n)
            await scheduler.runtime.pool.execute(
                """INSERT INTO schedule_runs (id, schedule_id, fire_time, kind, state,
                       skip_reason, created_at)
                   VALUES ($1, $2, $3, 'SCHEDULED', $4,
                           CASE WHEN $4 = 'SKIPPED' THEN 'overlap' END, $3)""",
                uuid.uuid4(),
                schedule_id,
                fire,
                state,
            )
        listed = json_of(
            await scheduler.http.get(
                f"/schedules/{schedule_id}/runs", params={"limit": 25}, headers=bearer
            )
        )["items"]
        runs = sorted(listed, key=lambda r: datetime.fromisoformat(r["fire_time"]))
        assert [r["state"] for r in runs] == SEEDED

        async with (
            running_console(
                uid, database_url, kafka_bootstrap, scheduler_url=scheduler.url
            ) as console,
            async_playwright() as pw,
        ):
            # The charts' stylesheet needs no session (like /static) and keeps the headers.
            async with httpx.AsyncClient(base_url=console.url) as anonymous:
                css = await anonymous.get("/charts.css")
            assert css.status_code == 200
            assert css.headers["content-type"].startswith("text/css")
            assert "#chart-outcome-strip " in css.text
            assert "script-src" not in css.headers["content-security-policy"]
            assert css.headers["content-security-policy"].startswith("default-src 'self'")
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = await browser.new_page(base_url=console.url)
            refused: list[str] = []

            def on_console(message: ConsoleMessage) -> None:
                if "Content Security Policy" in message.text:
                    refused.append(message.text)

            page.on("console", on_console)
            await page.goto("/signin")
            await page.get_by_label("Your name").fill("strip reader")
            await page.get_by_label("Services' API key").fill(API_KEY)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

            await page.goto(f"/schedules/{schedule_id}")
            svg = page.locator("#chart-outcome-strip")
            await expect(svg).to_be_visible()
            await expect(svg).to_have_attribute("role", "img")
            await expect(page.locator("#chart-outcome-strip-title")).to_have_text(
                f"The last {len(SEEDED)} runs, oldest first"
            )
            rows = page.locator("#outcome-strip-table tbody tr")
            shown = [
                [t.strip() for t in await rows.nth(i).locator("th, td").all_inner_texts()]
                for i in range(await rows.count())
            ]
            assert shown == [
                [
                    datetime.fromisoformat(r["fire_time"])
                    .astimezone(UTC)
                    .strftime("%Y-%m-%d %H:%M:%S"),
                    r["state"],
                ]
                for r in runs
            ]
            for i, state in enumerate(RUN_STATES):
                cells = svg.locator(f".serie-{i} desc.value")
                assert [c.strip() for c in await cells.all_text_contents()] == [
                    "1" if r["state"] == state else "0" for r in runs
                ], state
            # Coloured by /charts.css: FAILED (series 1) in its red.
            failed = svg.locator(".serie-1 rect.rect").nth(SEEDED.index("FAILED"))
            assert await failed.evaluate("r => getComputedStyle(r).fill") == "rgb(198, 40, 40)"

            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            assert refused == []
            await browser.close()
