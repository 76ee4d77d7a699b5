"""The dead letters page over real HTTP: letters listed with their reason and no secret,
replay with the form's CSRF token, refused twice unless forced, audited under the operator's
name; the overview counts the letters kept."""

from __future__ import annotations

import json
import re

import httpx

from tests.integration.console.harness import csrf_of, running_console, write_letter

SECRET = "gAAAAABsecret-access-token"


async def test_page_lists_replays_and_refuses_a_second_replay(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with running_console(uid, database_url, kafka_bootstrap) as console:
        await write_letter(
            console,
            "token.refreshed",
            "user-7",
            json.dumps({"user_id": "user-7", "access_token_encrypted": SECRET}),
            reason="invalid token.refreshed event: expires_at: Field required",
        )
        await write_letter(console, "schedule.due", "sched-1", '{"schedule_id": "sched-1"}')
        async with httpx.AsyncClient(base_url=console.url, follow_redirects=False) as http:
            assert (await http.get("/dead-letters")).status_code == 303  # sign in first
            await console.sign_in(http, "page operator")

            overview = (await http.get("/")).text
            assert re.search(r'id="dead-letters">2<', overview)
            assert 'href="/dead-letters"' in overview

            page = await http.get("/dead-letters", params={"topic": "token.refreshed"})
            assert page.status_code == 200
            assert "expires_at: Field required" in page.text
            assert "user-7" in page.text
            assert SECRET not in page.text
            assert "sched-1" not in page.text  # filtered to one topic
            assert "not replayed" in page.text
            [letter_id] = re.findall(r'name="letter" value="([^"]+)"', page.text)
            assert letter_id.startswith("token.refreshed.dlq/")
            csrf = csrf_of(page.text)

            form = {"letter": letter_id, "topic": "token.refreshed"}
            forged = await http.post("/dead-letters/replay", data=form)
            assert forged.status_code == 403
            done = await http.post("/dead-letters/replay", data=form | {"csrf": csrf})
            assert done.status_code == 200, done.text
            assert "replayed by page operator at" in done.text
            again = await http.post("/dead-letters/replay", data=form | {"csrf": csrf})
            assert again.status_code == 409
            assert "already replayed" in again.text
            forced = await http.post(
                "/dead-letters/replay", data=form | {"csrf": csrf, "force": "yes"}
            )
            assert forced.status_code == 200
            assert "(2 times)" in forced.text
            nothing = await http.post("/dead-letters/replay", data={"csrf": csrf})
            assert nothing.status_code == 400
            assert SECRET not in forced.text + again.text

            audit = (await http.get("/audit")).text
            assert "dead_letter.replay" in audit
        rows = await console.audit()
        assert [(a["principal"], a["outcome"]) for a in rows] == [
            ("page operator", "ok"),
            ("page operator", "refused (409)"),
            ("page operator", "ok"),
        ]
