"""The operators' console in a real headless Chromium (Debian's package, driven by
Playwright), against the real services, broker, database and AMC/LWA simulator.

Screenshots are taken on every run; they replace docs/console/ (which docs/console.md shows)
only with AMC_CONSOLE_SCREENSHOTS=docs/console, so a test run leaves the work tree as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from playwright.async_api import Browser, Page, async_playwright, expect

from amclocal.demo import DEMO
from amclocal.ports import free_port
from amclocal.simulator.control import SimControl
from amclocal.stack import ServiceStack
from tests.support.http import serve_app
from tests.support.kafka import TopicReader, produce

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SHOTS = Path(
    os.environ.get("AMC_CONSOLE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "amc-console-shots"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUN_FIELDS = {
    "workflow_id": DEMO.workflow_id,
    "instance_id": DEMO.instance_id,
    "user_id": DEMO.user_id,
    "advertiser_id": DEMO.advertiser_id,
    "marketplace_id": DEMO.marketplace_id,
}


@dataclass
class LwaConsent:
    """Login with Amazon's consent page as a test double: the person agrees at once, and LWA
    redirects back with the next code (registered in the simulator, which exchanges it)."""

    url: str = ""
    next_code: str = ""
    seen: dict[str, list[str]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/ap/oa")
        async def consent(request: Request) -> RedirectResponse:
            query = parse_qs(request.url.query)
            self.seen = query
            back = {"code": self.next_code, "state": query["state"][0]}
            return RedirectResponse(f"{query['redirect_uri'][0]}?{urlencode(back)}", 302)

        return app


@pytest.fixture(scope="module")
async def lwa() -> AsyncIterator[LwaConsent]:
    consent = LwaConsent()
    async with serve_app(consent.app()) as url:
        consent.url = url
        yield consent


@pytest.fixture(scope="module")
async def console(stack: ServiceStack, lwa: LwaConsent) -> AsyncIterator[str]:
    url = await stack.start_console(
        free_port(),
        {
            "CONSOLE_LWA_AUTHORIZE_URL": f"{lwa.url}/ap/oa",
            "CONSOLE_TRACE_URL_TEMPLATE": "http://jaeger.test/trace?execution={execution_id}",
        },
    )
    yield url
    proc = stack.processes.pop("console")
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 30)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


async def signed_in(browser: Browser, console: str, stack: ServiceStack, **kw: Any) -> Page:
    context = await browser.new_context(base_url=console, **kw)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))
    await page.get_by_label("Your name").fill("e2e operator")
    await page.get_by_label("Services' API key").fill(stack.keys["API_KEY"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


async def fill_run(page: Page) -> None:
    for name, value in RUN_FIELDS.items():
        await page.locator(f"#f-{name}").fill(value)


async def shot(page: Page, name: str) -> None:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def signin_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the sign-in form has no CSRF field"
    return found.group(1)


async def test_sign_in_is_required_and_changes_need_the_csrf_token(
    console: str, stack: ServiceStack
) -> None:
    async with httpx.AsyncClient(base_url=console, follow_redirects=False) as http:
        assert (await http.get("/schedules")).status_code == 303
        key = stack.keys["API_KEY"]
        # Without the sign-in form's own token (cookie and field), even the right key fails.
        forged_signin = await http.post("/signin", data={"name": "x", "api_key": key})
        assert forged_signin.status_code == 403
        token = signin_token((await http.get("/signin")).text)
        wrong = await http.post(
            "/signin", data={"name": "x", "api_key": "not-the-key", "csrf": token}
        )
        assert wrong.status_code == 401
        token = signin_token(wrong.text)
        ok = await http.post(
            "/signin", data={"name": "curl", "api_key": key, "next": "/", "csrf": token}
        )
        assert ok.status_code == 303
        cookies = ok.headers.get_list("set-cookie")
        cookie = next(c for c in cookies if c.startswith("amc_console=")).lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        forged = await http.post("/schedules/new", data={"cron": "* * * * *"})
        assert forged.status_code == 403
        for path in (
            "/",
            "/schedules",
            "/users",
            "/executions",
            "/collections",
            "/dead-letters",
            "/audit",
            "/instances",
            "/workflows",
            "/rules",
        ):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert stack.keys["API_KEY"] not in page.text, path


async def test_schedule_form_live_runs_and_pause(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    page = await signed_in(browser, console, stack)
    await page.get_by_role("link", name="Schedules").click()
    await page.get_by_role("link", name="New schedule").click()
    name = f"console-{uuid.uuid4().hex[:6]}"
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Cron").fill("61 * * * *")
    await page.get_by_label("Time zone").fill("Europe/London")
    await fill_run(page)
    await page.get_by_role("button", name="Create schedule").click()
    # Refused by the scheduler, with the field named next to its input.
    await expect(page.locator("#e-cron")).to_contain_text("cron:")
    await expect(page.get_by_label("Cron")).to_have_attribute("aria-invalid", "true")
    await shot(page, "schedule-bad-cron")

    await page.get_by_label("Cron").fill("0 6 * * 1")
    await page.get_by_role("button", name="Create schedule").click()
    await expect(page.get_by_role("heading", name=f"Schedule {name}")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Created.")
    schedule_id = urlparse(page.url).path.rsplit("/", 1)[1]
    await expect(page.locator("#runs")).to_contain_text("No runs yet.")

    # A run started elsewhere (the API) shows up on the open page through the live feed.
    async with httpx.AsyncClient(
        base_url=stack.url("scheduler"),
        headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"},
    ) as scheduler:
        answer = await scheduler.post(f"/schedules/{schedule_id}/trigger")
        assert answer.status_code == 202, answer.text
    row = page.locator("#runs tr.run")
    await expect(row).to_have_count(1, timeout=30_000)
    await expect(row).to_contain_text("SUCCEEDED", timeout=60_000)
    await shot(page, "schedule")

    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#state")).to_have_text("PAUSED")
    await expect(page.get_by_role("button", name="Resume")).to_be_visible()
    await page.goto("/audit")
    await expect(page.locator("tbody")).to_contain_text("schedule.pause")
    await expect(page.locator("tbody")).to_contain_text("e2e operator")


async def test_schedule_form_takes_adhoc_sql_for_the_registered_instance(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    page = await signed_in(browser, console, stack)
    await page.goto("/schedules/new")
    name = f"adhoc-{uuid.uuid4().hex[:6]}"
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Cron").fill("0 6 * * 1")
    await page.get_by_label("Time zone").fill("UTC")
    await page.locator("#f-instance_id").fill(DEMO.instance_id)
    await page.locator("#f-user_id").fill(DEMO.user_id)
    await page.locator("#f-workflow_id").fill(DEMO.workflow_id)
    await page.locator("#f-sql_query").fill("SELECT 1")
    await page.get_by_role("button", name="Create schedule").click()
    # Both a workflow and SQL: refused, the scheduler's words shown, the form kept.
    await expect(page.get_by_role("alert")).to_contain_text("exactly one of workflow_id")
    await expect(page.locator("#f-sql_query")).to_have_value("SELECT 1")

    await page.locator("#f-workflow_id").fill("")
    await page.get_by_role("button", name="Create schedule").click()
    await expect(page.get_by_role("status")).to_have_text("Created.")
    await expect(page.locator("main")).to_contain_text(f"(ad hoc SQL) on {DEMO.instance_id}")
    schedule_id = urlparse(page.url).path.rsplit("/", 1)[1]
    async with httpx.AsyncClient(
        base_url=stack.url("scheduler"),
        headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"},
    ) as scheduler:
        stored = (await scheduler.get(f"/schedules/{schedule_id}")).json()
    assert (stored["sql_query"], stored["workflow_id"]) == ("SELECT 1", None)
    assert (stored["advertiser_id"], stored["marketplace_id"]) == (None, None)


async def test_collection_week_grid_fills(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    page = await signed_in(browser, console, stack)
    await page.goto("/collections/new")
    await fill_run(page)
    await page.get_by_label("First day").fill("2024-01-01")
    await page.get_by_label("Last day").fill("2024-01-28")
    await page.get_by_label("Weeks at once").fill("2")
    await page.get_by_role("button", name="Create collection").click()
    await expect(page.get_by_role("status")).to_have_text("Created.")
    weeks = page.locator("ol.weeks li.week")
    await expect(weeks).to_have_count(4)
    await expect(page.locator("ol.weeks li.s-succeeded")).to_have_count(4, timeout=90_000)
    await expect(page.locator("#collection-status")).to_have_text("COMPLETED")
    await shot(page, "collection")
    await page.goto("/collections")
    await expect(page.locator("progress").first).to_be_visible()


async def test_cancel_an_execution(browser: Browser, console: str, stack: ServiceStack) -> None:
    sim = SimControl(stack.simulator_url)
    await sim.configure(running_seconds=120)  # long enough to cancel it while it runs
    try:
        auth = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
        async with httpx.AsyncClient(headers=auth) as http:
            created = await http.post(
                f"{stack.url('scheduler')}/schedules",
                json={**RUN_FIELDS, "cron": "0 6 * * 1", "timezone": "UTC"},
            )
            assert created.status_code == 201, created.text
            schedule_id = created.json()["id"]
            run = await http.post(f"{stack.url('scheduler')}/schedules/{schedule_id}/trigger")
            run_id = run.json()["id"]
            execution_id = None
            for _ in range(100):
                found = await http.get(
                    f"{stack.url('poller')}/executions",
                    params={"origin_kind": "schedule", "origin_id": run_id},
                )
                listed = found.json()["executions"]
                if listed and listed[0]["status"] == "RUNNING":
                    execution_id = listed[0]["execution_id"]
                    break
                await asyncio.sleep(0.3)
            assert execution_id, "the execution never reached RUNNING"

        page = await signed_in(browser, console, stack)
        await page.goto(f"/executions?origin_kind=schedule&origin_id={run_id}")
        await page.get_by_role("link", name=execution_id[:8]).click()
        await expect(page.locator("#status")).to_have_text("RUNNING")
        await expect(page.locator("#amc-id")).not_to_have_text("—")
        trace = page.get_by_role("link", name="Open the trace in Jaeger")
        await expect(trace).to_have_attribute("href", re.compile(execution_id))
        await page.get_by_role("button", name="Cancel execution").click()
        await expect(page.get_by_role("status")).to_have_text("Cancel requested.")
        await expect(page.locator("#status")).to_have_text("CANCELLED", timeout=30_000)
        await shot(page, "execution-cancelled")
    finally:
        await sim.configure(running_seconds=0.7)


async def test_connect_an_amazon_account(
    browser: Browser, console: str, stack: ServiceStack, lwa: LwaConsent
) -> None:
    user_id = f"console-user-{uuid.uuid4().hex[:6]}"
    code = f"code-{uuid.uuid4().hex}"
    await SimControl(stack.simulator_url).register_code(code, user_id, f"{console}/oauth/callback")
    lwa.next_code = code

    page = await signed_in(browser, console, stack, viewport={"width": 390, "height": 844})
    await page.goto("/users")
    await shot(page, "users-phone")
    await page.get_by_label("User id").fill(user_id)
    await page.get_by_role("button", name="Connect with Login with Amazon").click()
    await expect(page.locator("#connect-result")).to_contain_text(f"User {user_id} is connected")
    assert lwa.seen["client_id"] == [DEMO.client_id]
    assert lwa.seen["response_type"] == ["code"]
    assert code not in await page.content()
    await page.get_by_role("link", name=f"Open user {user_id}").click()
    await expect(page.locator("#token-status")).to_have_text("ACTIVE")
    # The state is single-use: replaying the callback is refused.
    await page.goto(f"/oauth/callback?{urlencode({'code': code, 'state': lwa.seen['state'][0]})}")
    await expect(page.locator("#connect-result")).to_contain_text("unknown, used or expired")


async def test_dead_letter_is_listed_and_replayed(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    # An execution request without its run: the poller refuses it and dead-letters it.
    request_id = f"e2e-bad-{uuid.uuid4().hex[:6]}"
    source = stack.topics.name("execution.requested")
    bad = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-01-01T00:00:00Z",
        "schema_version": 1,
        "request_id": request_id,
        "origin": {"kind": "external", "id": request_id},
    }
    await produce(stack.bootstrap, source, [json.dumps(bad).encode()], key=request_id.encode())
    auth = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    async with httpx.AsyncClient(base_url=console, headers=auth) as http:
        letter = None
        for _ in range(200):
            listed = await http.get("/api/dead-letters", params={"topic": "execution.requested"})
            letter = next((x for x in listed.json()["letters"] if x["key"] == request_id), None)
            if letter:
                break
            await asyncio.sleep(0.3)
        assert letter, "the poller never dead-lettered the request"
    assert "run: Field required" in letter["reason"]

    page = await signed_in(browser, console, stack, viewport={"width": 390, "height": 844})
    await expect(page.locator("#dead-letters")).to_have_text(re.compile(r"^[1-9]\d*$"))
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
    )
    await page.get_by_label("Topic").select_option("execution.requested")
    await page.get_by_role("button", name="Filter").click()
    row = page.locator(f'tr[data-letter="{letter["id"]}"]')
    await expect(row).to_contain_text("run: Field required")
    await expect(row.locator("td.replayed")).to_have_text("not replayed")
    # By keyboard: focus the letter's checkbox, tick it with Space, submit with Enter.
    box = page.get_by_label(f"Choose letter {letter['id']}")
    await box.focus()
    await page.keyboard.press("Space")
    await expect(box).to_be_checked()
    await shot(page, "dead-letters-phone")
    await page.get_by_role("button", name="Replay selected").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#replay-result")).to_contain_text(f"{letter['id']}: replayed")
    await expect(row.locator("td.replayed")).to_contain_text("replayed by e2e operator")

    async with TopicReader(stack.bootstrap, source) as reader:
        records = await reader.wait_for(
            lambda rs: any(r.headers.get("x-replay-of") == letter["id"] for r in rs),
            what="the replayed record",
        )
    [replayed] = [r for r in records if r.headers.get("x-replay-of") == letter["id"]]
    assert replayed.key == request_id.encode()
    assert json.loads(replayed.value) == bad

    await page.goto("/audit")
    await expect(page.locator("tbody")).to_contain_text("dead_letter.replay")


async def test_instances_workflows_and_rules_pages(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    name = f"ops-{uuid.uuid4().hex[:6]}"
    secret_url = "json://ops:Pa55word@hooks.example.com/hook/T0kenValue?key=K3yValue"
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    ) as http:
        made = await http.post(
            f"{stack.url('notifier')}/notifications/rules",
            json={"name": name, "url": secret_url, "filter": {"statuses": ["FAILED"]}},
        )
        assert made.status_code == 201, made.text

    page = await signed_in(browser, console, stack, viewport={"width": 390, "height": 844})
    await page.get_by_role("link", name="Instances").click()
    await page.get_by_role("link", name=DEMO.instance_id, exact=True).click()
    await expect(page.locator("#advertiser")).to_have_text(DEMO.advertiser_id)
    await expect(page.locator("#limits")).to_have_text("global defaults")
    await page.get_by_role("link", name="Saved workflows").click()
    await page.get_by_role("link", name=DEMO.workflow_id, exact=True).click()
    await expect(page.get_by_role("heading", name=f"Workflow {DEMO.workflow_id}")).to_be_visible()
    await expect(page.locator("#sql")).to_contain_text("sponsored_ads_traffic")
    await shot(page, "workflow-phone")

    await page.get_by_role("link", name="Notification rules").click()
    row = page.locator("tr", has_text=name)
    await expect(row).to_contain_text("json://hooks.example.com/…")
    await page.get_by_role("link", name=name).click()
    await expect(page.locator("#channel")).to_contain_text("json://hooks.example.com/…")
    html = await page.content()
    for secret in ("Pa55word", "T0kenValue", "K3yValue", stack.keys["API_KEY"]):
        assert secret not in html


async def test_validate_a_workflow_shows_amcs_verdict(
    browser: Browser, console: str, stack: ServiceStack
) -> None:
    """The workflow page's Validate asks AMC for a dry run of the version shown (Amazon's
    OpenAPI, dryRun: "without consuming quotas"); the simulator refuses an undefined
    CUSTOM_PARAMETER as the OpenAPI says compilation does."""
    workflow_id = f"broken-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    ) as http:
        pushed = await http.put(
            f"{stack.url('poller')}/workflows/{DEMO.instance_id}/{workflow_id}",
            json={
                "sql_query": "SELECT campaign FROM dsp_impressions "
                "WHERE campaign = CUSTOM_PARAMETER('nope')",
                "author": "e2e",
            },
        )
        assert pushed.status_code == 200, pushed.text

    page = await signed_in(browser, console, stack)
    await page.goto(f"/workflows/{DEMO.instance_id}/{workflow_id}")
    await page.get_by_role("button", name="Validate").click()
    verdict = page.locator("#verdict")
    await expect(verdict).to_contain_text("Invalid (FAILED): Query compilation failed")
    await expect(verdict).to_contain_text("CUSTOM_PARAMETER('nope')")
    await shot(page, "workflow-validate")

    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    ) as http:
        runs = await http.get(
            f"{stack.url('poller')}/executions",
            params={"instance_id": DEMO.instance_id, "workflow_id": workflow_id},
        )
    assert runs.json()["executions"] == []  # a dry run is no execution of ours
    await page.goto("/audit")
    await expect(page.locator("tbody")).to_contain_text("workflow.validate")
