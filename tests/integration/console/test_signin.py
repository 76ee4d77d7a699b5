"""The sign-in form's own CSRF defence, on the console served in-process over real HTTP
(real database and broker; no other service is needed to sign in)."""

from __future__ import annotations

import re

import httpx

from services.console.app import create_app
from services.console.auth import SIGNIN_COOKIE
from services.console.settings import ConsoleSettings
from shared.contract import Topics
from shared.topics_admin import contract_topics, ensure_topics
from tests.support.http import serve_app
from tests.support.settings import service_settings

API_KEY = "console-test-key"


def token_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the sign-in form has no CSRF field"
    return found.group(1)


async def test_sign_in_needs_the_forms_token_and_its_cookie(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = service_settings(
        ConsoleSettings,
        service="console",
        uid=uid,
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        api_key=API_KEY,
    )
    await ensure_topics(kafka_bootstrap, contract_topics(Topics(settings.kafka.topic_prefix)))
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, follow_redirects=False) as http,
    ):
        good = {"name": "ann", "api_key": API_KEY, "next": "/audit"}

        # No token at all (a form posted from another site): refused, even with the right key.
        refused = await http.post("/signin", data=good)
        assert refused.status_code == 403
        assert "amc_console=" not in refused.headers.get("set-cookie", "")

        form = await http.get("/signin")
        assert form.status_code == 200
        token = token_of(form.text)
        cookie = http.cookies.get(SIGNIN_COOKIE)
        assert cookie
        assert token not in cookie
        set_cookie = form.headers["set-cookie"].lower()
        assert "samesite=strict" in set_cookie
        assert "httponly" in set_cookie

        # A wrong token, or the right token without its cookie: refused.
        wrong = await http.post("/signin", data={**good, "csrf": token[:-2] + "xx"})
        assert wrong.status_code == 403
        token = token_of(wrong.text)  # every refusal hands out a fresh form
        cookie = http.cookies.get(SIGNIN_COOKIE)
        http.cookies.delete(SIGNIN_COOKIE)
        without_cookie = await http.post("/signin", data={**good, "csrf": token})
        assert without_cookie.status_code == 403
        # Another form's token with this cookie: refused too (sent by a client with no jar,
        # so exactly this cookie goes).
        other_token = token_of((await http.get("/signin")).text)
        assert other_token != token
        async with httpx.AsyncClient(base_url=url, follow_redirects=False) as bare:
            mixed = await bare.post(
                "/signin",
                data={**good, "csrf": other_token},
                headers={"Cookie": f"{SIGNIN_COOKIE}={cookie}"},
            )
            assert mixed.status_code == 403
            matched = await bare.post(
                "/signin",
                data={**good, "api_key": "nope", "csrf": token},
                headers={"Cookie": f"{SIGNIN_COOKIE}={cookie}"},
            )
            assert matched.status_code == 401  # the pair matches: only the key is wrong

        # The right pair, with the wrong key: 401 (the key is checked after the token).
        token = token_of((await http.get("/signin")).text)
        bad_key = await http.post("/signin", data={**good, "api_key": "nope", "csrf": token})
        assert bad_key.status_code == 401

        # The right pair and key: signed in, sent on, and the pre-session cookie is spent.
        token = token_of(bad_key.text)
        ok = await http.post("/signin", data={**good, "csrf": token})
        assert ok.status_code == 303, ok.text
        assert ok.headers["location"] == "/audit"
        assert http.cookies.get("amc_console")
        assert http.cookies.get(SIGNIN_COOKIE) is None
        audit = await http.get("/audit")
        assert audit.status_code == 200
        assert "Sign out" in audit.text
