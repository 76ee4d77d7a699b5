"""The console's "connect an Amazon account" per Login with Amazon region, through the real
token service and the simulator as LWA (issue 20: every user got the NA hosts)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from amclocal.simulator import RouteKind
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from shared.contract import Topics
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.console.harness import csrf_of
from tests.integration.token.harness import API_KEY, CLIENT_ID, TokenHarness
from tests.support.http import serve_app
from tests.support.settings import service_settings


async def test_a_user_connected_in_europe_gets_lwas_eu_hosts(
    token_service: TokenHarness,
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = token_service
    # This test's own browser (httpx) would log the callback URL, code included: that is the
    # browser's address bar, not the services, whose logs the leak guard keeps checking.
    caplog.set_level(logging.WARNING, logger="httpx")
    settings = service_settings(
        ConsoleSettings,
        service="console",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        api_key=API_KEY,  # the console calls the token service with its own key
        token_url=h.base_url,
        lwa_client_id=CLIENT_ID,
    )
    await ensure_topics(kafka_bootstrap, contract_topics(Topics(settings.kafka.topic_prefix)))
    app = create_app(settings)
    async with (
        serve_app(app) as url,
        httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30.0) as browser,
    ):
        token = csrf_of((await browser.get("/signin")).text)
        signed_in = await browser.post(
            "/signin", data={"name": "ann", "api_key": API_KEY, "next": "/", "csrf": token}
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await browser.get("/users")
        assert page.status_code == 200, page.text
        assert 'name="region"' in page.text
        # Amazon's create-authorization-grant guide: EU's authorization URL prefix is
        # https://eu.account.amazon.com/ap/oa (NA's www.amazon.com, FE's apac.account...).
        csp = page.headers["content-security-policy"]
        for host in ("www.amazon.com", "eu.account.amazon.com", "apac.account.amazon.com"):
            assert f"https://{host}" in csp

        answer = await browser.post(
            "/users/connect",
            data={"user_id": "user-eu-web", "region": "EU", "csrf": csrf_of(page.text)},
        )
        assert answer.status_code == 303, answer.text
        sent_to = urlsplit(answer.headers["location"])
        assert f"{sent_to.scheme}://{sent_to.netloc}{sent_to.path}" == (
            "https://eu.account.amazon.com/ap/oa"
        )
        query = parse_qs(sent_to.query)
        state, redirect = query["state"][0], query["redirect_uri"][0]

        # LWA sends the browser back with a code; the token service exchanges it at LWA's EU
        # token host (retrieve-access-token.md: https://api.amazon.co.uk/auth/o2/token).
        h.secrets.add("code-eu-web")
        await h.sim.register_code("code-eu-web", "user-eu-web", redirect)
        back = await browser.get("/oauth/callback", params={"code": "code-eu-web", "state": state})
        assert back.status_code == 200, back.text
        assert "user-eu-web is connected" in back.text
        [exchange] = await h.sim.requests(kind=RouteKind.TOKEN)
        assert exchange.path == "/lwa/eu/auth/o2/token"
        stored = (await h.api("GET", "/tokens/user-eu-web")).json()
        assert stored["region"] == "EU"

        refused = await browser.post(
            "/users/connect",
            data={"user_id": "user-x", "region": "US", "csrf": csrf_of(page.text)},
        )
        assert refused.status_code == 422
        assert "choose NA, EU or FE" in refused.text
