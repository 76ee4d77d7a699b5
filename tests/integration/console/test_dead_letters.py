"""Dead letters through the console's JSON API, over the real broker and database: a record a
service really dead-lettered is listed with its reason, replayed to its source topic as it
was (key, payload, headers, plus x-replay-of), processed normally then (the failed attempt
left no processed event id), refused a second time unless forced, de-duplicated by the
consumer when forced, and every attempt is audited with who made it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.console.dead_letters import REPLAY_HEADER
from shared.contract import ExecutionRequested
from tests.integration.console.harness import (
    Console,
    csrf_of,
    running_console,
    running_probe,
    write_letter,
)
from tests.integration.probe import request
from tests.support.http import json_of
from tests.support.kafka import TopicReader, produce


async def letters(console: Console, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json_of(
        await console.api.get("/api/dead-letters", params=params)
    )["letters"]
    return found


async def wait_for_letters(console: Console, n: int, **params: Any) -> list[dict[str, Any]]:
    for _ in range(300):
        found = await letters(console, **params)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} dead letters listed")


async def replay(console: Console, *ids: str, force: bool = False) -> list[dict[str, Any]]:
    answer = await console.api.post(
        "/api/dead-letters/replay", json={"letter_ids": list(ids), "force": force}
    )
    results: list[dict[str, Any]] = json_of(answer)["results"]
    return results


async def end_offsets(console: Console, topic: str) -> int:
    async with TopicReader(console.bootstrap, topic) as reader:
        consumer: Any = reader._consumer
        parts = list(consumer.assignment())
        return sum((await consumer.end_offsets(parts)).values())


async def test_a_dead_lettered_record_is_listed_replayed_once_and_audited(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with (
        running_console(uid, database_url, kafka_bootstrap) as console,
        running_probe(uid, database_url, kafka_bootstrap) as probe,
    ):
        source = console.topics.name(ExecutionRequested.topic)
        event = request("req-refused")
        probe.refusing.add("req-refused")
        await produce(
            kafka_bootstrap,
            source,
            [event.to_bytes()],
            key=event.key(),
            headers={"x-origin": "test"},
        )

        [letter] = await wait_for_letters(console, 1, topic="execution.requested")
        assert letter["topic"] == "execution.requested"
        assert letter["reason"] == "PermanentError: request req-refused is refused by the probe"
        assert letter["error_type"] == "PermanentError"
        assert letter["key"] == "req-refused"
        assert letter["consumer"] == f"{uid}.amc-probe"
        assert letter["replayed"] is None
        assert letter["id"].startswith("execution.requested.dlq/")
        assert "x-origin" in letter["header_names"]
        assert await letters(console, topic="schedule.due") == []
        assert await probe.seen() == []  # the refused handler's write was rolled back

        # Replayed: the original record again, naming the letter; processed normally now.
        probe.refusing.clear()
        assert await replay(console, letter["id"]) == [
            {"letter_id": letter["id"], "outcome": "replayed", "detail": "to execution.requested"}
        ]
        async with TopicReader(kafka_bootstrap, source) as reader:
            records = await reader.wait_count(2)
        original, replayed = sorted(records, key=lambda r: REPLAY_HEADER in r.headers)
        assert replayed.headers[REPLAY_HEADER] == letter["id"]
        assert replayed.key == original.key == event.key()
        assert replayed.value == original.value
        assert replayed.headers["x-origin"] == "test"
        for _ in range(300):
            if await probe.seen():
                break
            await asyncio.sleep(0.1)
        assert await probe.seen() == ["req-refused"]

        # A second replay is refused (nothing produced), unless forced.
        before = await end_offsets(console, source)
        [refused] = await replay(console, letter["id"])
        assert refused["outcome"] == "already_replayed"
        assert "replayed by api-key" in refused["detail"]
        assert await end_offsets(console, source) == before
        [forced] = await replay(console, letter["id"], force=True)
        assert forced["outcome"] == "replayed"
        assert await end_offsets(console, source) == before + 1
        # ... and the consumer takes the forced copy for what it is: a duplicate event.
        for _ in range(300):
            if probe.consumed("duplicate") >= 1:
                break
            await asyncio.sleep(0.1)
        assert probe.consumed("duplicate") == 1
        assert await probe.seen() == ["req-refused"]

        [listed] = await letters(console, topic="execution.requested.dlq")
        assert listed["replayed"]["by"] == "api-key"
        assert listed["replayed"]["times"] == 2

        audit = [
            (a["principal"], a["action"], a["target"], a["outcome"]) for a in await console.audit()
        ]
        assert audit == [
            ("api-key", "dead_letter.replay", letter["id"], "ok"),
            ("api-key", "dead_letter.replay", letter["id"], "refused (409)"),
            ("api-key", "dead_letter.replay", letter["id"], "ok"),
        ]


async def test_unknown_and_malformed_ids_and_bad_filters_are_answered(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with running_console(uid, database_url, kafka_bootstrap) as console:
        results = await replay(console, "schedule.due.dlq/0/99", "nonsense")
        assert [r["outcome"] for r in results] == ["not_found", "invalid"]
        bad = await console.api.get("/api/dead-letters", params={"topic": "no.such"})
        assert bad.status_code == 422
        too_many = await console.api.get("/api/dead-letters", params={"limit": 501})
        assert too_many.status_code == 422
        empty = await console.api.post("/api/dead-letters/replay", json={"letter_ids": []})
        assert empty.status_code == 422
        assert [a["outcome"] for a in await console.audit()] == ["refused (404)"]


async def test_the_api_needs_the_key_or_a_session_and_its_csrf_token(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with running_console(uid, database_url, kafka_bootstrap) as console:
        await write_letter(console, "schedule.due", "sched-1", '{"schedule_id": "sched-1"}')
        [letter] = await wait_for_letters(console, 1)
        body = {"letter_ids": [letter["id"]]}
        async with httpx.AsyncClient(base_url=console.url, follow_redirects=False) as http:
            assert (await http.get("/api/dead-letters")).status_code == 401
            wrong = {"Authorization": "Bearer not-the-key"}
            assert (await http.get("/api/dead-letters", headers=wrong)).status_code == 401
            assert (await http.post("/api/dead-letters/replay", json=body)).status_code == 401

            await console.sign_in(http, "browser operator")
            assert (await http.get("/api/dead-letters")).status_code == 200
            forged = await http.post("/api/dead-letters/replay", json=body)
            assert forged.status_code == 403
            csrf = csrf_of((await http.get("/dead-letters")).text)
            answer = await http.post(
                "/api/dead-letters/replay", json=body, headers={"X-CSRF-Token": csrf}
            )
            assert json_of(answer)["results"][0]["outcome"] == "replayed"
        audit = await console.audit()
        assert [(a["principal"], a["outcome"]) for a in audit] == [("browser operator", "ok")]
