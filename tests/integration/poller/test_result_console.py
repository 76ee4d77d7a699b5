"""An execution's result in the console, in a real headless Chromium (Debian's package,
driven by Playwright): the preview table (columns from the file, numbers right-aligned), the
files and their sizes, and downloads streamed through the console, byte for byte as AMC served
them, from the file store and from S3 (moto in server mode). The browser only ever talks to
the console: the API key and the store stay server-side."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from playwright.async_api import Page, async_playwright, expect

from amclocal.simulator import SimAccount, SimControl, WorkflowBehavior
from shared.crypto import KeyRing
from tests.integration.console.harness import API_KEY, running_console
from tests.integration.poller.conftest import (
    SettingsFactory,
    completed_events,
    external,
    run_for,
    served_poller,
)
from tests.integration.poller.test_result_stores import (  # noqa: F401 (fixtures)
    BUCKET,
    s3,
    s3_endpoint,
)
from tests.support.kafka import produce

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _shot(page: Page, name: str) -> None:
    """Screenshots as tests/e2e/test_console.py takes them: into docs/console only when
    AMC_CONSOLE_SCREENSHOTS says so, so a test run leaves the work tree as it was."""
    where = os.environ.get("AMC_CONSOLE_SCREENSHOTS")
    if where:
        await asyncio.to_thread(Path(where).mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


async def _download(page: Page, link: str) -> bytes:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=link, exact=True).click()
    download = await info.value
    assert await download.failure() is None
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_preview_and_download_of_a_multi_file_result(
    where: str,
    request: pytest.FixtureRequest,
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
    overrides = {"api_key": API_KEY}
    client = None
    if where == "s3":
        url, client = request.getfixturevalue("s3")
        overrides["results_url"] = url
    await simulator.set_workflow(WorkflowBehavior(workflow_id="wf-page", rows=250, files=2))
    settings = poller_settings(**overrides)
    async with served_poller(settings, simulator, sim_account, keys) as (poller, _, poller_url):
        await poller.send(external(run_for(sim_account, "wf-page")))
        [done] = await completed_events(poller, 1)
        assert done.result is not None
        if client is None:
            directory = Path(unquote(urlsplit(done.result.uri).path))
            stored = [(directory / n).read_bytes() for n in done.result.files]
        else:
            prefix = done.result.uri.removeprefix(f"s3://{BUCKET}/")
            stored = [
                client.get_object(Bucket=BUCKET, Key=f"{prefix}/{n}")["Body"].read()
                for n in done.result.files
            ]
        assert len(stored) == 2

        async with (
            running_console(uid, database_url, kafka_bootstrap, poller_url=poller_url) as console,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            context = await browser.new_context(base_url=console.url, accept_downloads=True)
            page = await context.new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            await page.goto("/")
            await page.get_by_label("Your name").fill("result reader")
            await page.get_by_label("Services' API key").fill(API_KEY)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

            # The live feed names what an event is about and links to it. The feed starts
            # reading at the newest offset once assigned, so the event is sent until it shows.
            link = page.locator(f'#feed a[href="/executions/{done.execution_id}"]')
            event = done.model_dump_json().encode()
            topic = console.topics.name("execution.completed")
            for _ in range(60):
                await produce(console.bootstrap, topic, [event])
                try:
                    await expect(link).to_have_count(1, timeout=500)
                    break
                except AssertionError:
                    continue
            await expect(link.first).to_have_text(
                f"on {sim_account.instance_id}, for {sim_account.user_id}"
            )

            await page.goto(f"/executions/{done.execution_id}")
            await expect(page.locator("#run-window")).to_contain_text("2024-01-01 up to 2024-01-08")
            summary = page.locator("#result-summary")
            await expect(summary).to_contain_text("250 rows")
            await expect(summary).to_contain_text("in 2 files")
            await expect(summary).to_contain_text("the preview shows the first 20 rows")
            header = page.locator("#result-preview thead th")
            await expect(header).to_have_text(
                ["row_id", "workflow_id", "event_date", "impressions", "clicks", "purchases"]
            )
            lines = stored[0].decode().splitlines()[1:21]
            body = page.locator("#result-preview tbody tr")
            await expect(body).to_have_count(20)
            await expect(body.first.locator("td")).to_have_text(lines[0].split(","))
            cells = body.first.locator("td")
            aligned = [
                await cells.nth(i).evaluate("c => getComputedStyle(c).textAlign") for i in range(6)
            ]
            assert aligned == ["right", "left", "left", "right", "right", "right"]
            sizes = page.locator("#result-files td[data-bytes]")
            await expect(sizes).to_have_count(2)
            assert [int(await sizes.nth(i).get_attribute("data-bytes") or 0) for i in range(2)] == [
                len(b) for b in stored
            ]

            if where == "s3":
                await _shot(page, "execution-result")
                await page.set_viewport_size({"width": 390, "height": 844})
                await _shot(page, "execution-result-phone")
                await page.set_viewport_size({"width": 1280, "height": 720})

            whole = await _download(page, "Download CSV")
            assert whole == stored[0] + stored[1][stored[1].index(b"\n") + 1 :]
            parts = [await _download(page, name) for name in done.result.files]
            assert parts == stored
            # Byte for byte as AMC served them: the checksum was taken on AMC's stream.
            digest = hashlib.sha256(b"".join(parts)).hexdigest()
            assert done.result.checksum == f"sha256:{digest}"

            assert API_KEY not in await page.content()
            assert asked
            assert all(u.startswith(console.url) for u in asked), asked
            audit = await console.audit()
            downloads = [a for a in audit if a["action"] == "execution.download"]
            assert len(downloads) == 3
            assert {a["principal"] for a in downloads} == {"result reader"}

            # The store lost it: the page says so instead of failing.
            if client is None:
                shutil.rmtree(directory)
            else:
                for name in done.result.files:
                    client.delete_object(Bucket=BUCKET, Key=f"{prefix}/{name}")
            await page.goto(f"/executions/{done.execution_id}")
            await expect(page.locator("#result-problem")).to_contain_text("no longer in its store")
            await expect(page.get_by_role("link", name="Download CSV")).to_have_count(0)
            assert re.search("expired", await page.locator("#result-problem").inner_text())
            await browser.close()
