"""The rules API over real HTTP: bad input is refused naming the field, and a rule's URL (a
secret) is never answered in clear, not even in an error."""

from __future__ import annotations

from typing import Any

from tests.integration.notifier.harness import running_notifier, settings_for
from tests.integration.notifier.receivers import webhook_server
from tests.support.http import json_of

PASSWORD = "Pa55w0rd-XYZ"
TOKEN = "S3cretT0kenABC"


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [".".join(str(p) for p in d["loc"]) for d in response.json()["detail"]]


async def test_rules_are_checked_shown_redacted_tested_and_removed(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    with webhook_server() as (hooks, port):
        secret_url = f"json://ops:{PASSWORD}@127.0.0.1:{port}/hooks/{TOKEN}"
        async with running_notifier(settings) as notifier:
            http = notifier.http
            bad = [
                ({"url": secret_url}, "body.name"),
                ({"name": "x", "url": f"nonsense-{TOKEN}"}, "body.url"),
                ({"name": "x", "url": f"nosuchscheme://{TOKEN}@host/"}, "body.url"),
                (
                    {"name": "x", "url": secret_url, "filter": {"event_types": ["nope"]}},
                    "body.filter.event_types.0",
                ),
                ({"name": "x", "url": secret_url, "filter": {"colour": []}}, "body.filter.colour"),
                ({"name": "x", "url": secret_url, "extra": 1}, "body.extra"),
            ]
            for body, field in bad:
                response = await http.post("/notifications/rules", json=body)
                assert field in _fields(response), (body, response.text)
                assert TOKEN not in response.text
                assert PASSWORD not in response.text
            response = await http.post("/notifications/rules", content=b"[1, 2]")
            assert _fields(response) == ["body.(body)"]

            created = await notifier.add_rule(
                "ops hook", secret_url, event_types=["schedule.paused"]
            )
            assert created["url"] == "json://127.0.0.1/…"
            assert created["channel"] == "json"
            listed = await http.get("/notifications/rules")
            assert [r["id"] for r in json_of(listed)] == [created["id"]]
            for text in (listed.text, str(created)):
                assert TOKEN not in text
                assert PASSWORD not in text
            async with notifier.runtime.pool.acquire() as conn:
                stored = await conn.fetchval(
                    "SELECT url_encrypted FROM rules WHERE id = $1::uuid", created["id"]
                )
            assert TOKEN not in stored
            assert PASSWORD not in stored
            assert notifier.runtime.keys.decrypt(stored) == secret_url

            tested = json_of(await http.post(f"/notifications/rules/{created['id']}/test"))
            assert tested == {
                "rule_id": created["id"],
                "channel": "json",
                "ok": True,
                "error": "",
            }
            (sample,) = hooks.of(f"/hooks/{TOKEN}")
            assert "test" in sample["title"].lower()

            hooks.refuse(f"/hooks/{TOKEN}", 1)
            tested = json_of(await http.post(f"/notifications/rules/{created['id']}/test"))
            assert tested["ok"] is False
            assert "500" in tested["error"]
            assert TOKEN not in tested["error"]
            assert PASSWORD not in tested["error"]

            removed = await http.delete(f"/notifications/rules/{created['id']}")
            assert removed.status_code == 204
            assert json_of(await http.get("/notifications/rules")) == []
            again = await http.delete(f"/notifications/rules/{created['id']}")
            assert again.status_code == 404
            async with notifier.runtime.pool.acquire() as conn:
                erased = await conn.fetchval(
                    "SELECT url_encrypted FROM rules WHERE id = $1::uuid", created["id"]
                )
            assert erased == ""

            status = await http.get("/notifications/deliveries", params={"status": "LOST"})
            assert "query.status" in _fields(status)


async def test_the_api_needs_the_key(uid: str, database_url: str, kafka_bootstrap: str) -> None:
    settings = settings_for(uid, database_url, kafka_bootstrap)
    async with running_notifier(settings) as notifier:
        response = await notifier.http.get(
            "/notifications/rules", headers={"Authorization": "Bearer wrong"}
        )
        assert response.status_code == 401
