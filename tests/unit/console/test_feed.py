"""What the live feed says an event is about, and where it links."""

from __future__ import annotations

import json

from services.console.feed import LiveFeed, summarise
from services.console.schedule_names import ScheduleNames
from shared.config import KafkaSettings
from shared.contract import Topics


def test_an_execution_event_names_its_origin_instance_and_user_and_links_to_it() -> None:
    body = {
        "execution_id": "0b6f5c1e-1111-4222-8333-944455556666",
        "status": "SUCCEEDED",
        "instance_id": "amc1",
        "user_id": "ops@example.com",
        "origin": {"kind": "schedule", "id": "run-1"},
        "result": {"uri": "s3://secret-bucket/x"},
    }
    said = summarise("t.execution.completed", "t.", json.dumps(body).encode())
    assert said["topic"] == "execution.completed"
    assert said["link"] == "/executions/0b6f5c1e-1111-4222-8333-944455556666"
    assert said["about"] == "a schedule's run, on amc1, for ops@example.com"
    assert "secret-bucket" not in json.dumps(said)


def test_ids_are_quoted_into_links_and_an_event_without_ids_has_none() -> None:
    said = summarise("user.x", "", json.dumps({"user_id": "a/b?c"}).encode())
    assert said["link"] == "/users/a%2Fb%3Fc"
    assert said["about"] == "for a/b?c"
    bare = summarise("x", "", b'{"status": "ok"}')
    assert "link" not in bare
    assert "about" not in bare


def test_a_schedule_event_says_its_schedule_name_when_one_is_known() -> None:
    body = {"schedule_id": "s-1", "run_id": "run-1", "instance_id": "amc1"}
    named = summarise("schedule.fired", "", json.dumps(body).encode(), {"s-1": "Daily reach"})
    assert named["about"] == "schedule Daily reach, on amc1"
    assert named["link"] == "/schedules/s-1"
    unknown = summarise("schedule.fired", "", json.dumps(body).encode(), {"other": "x"})
    assert unknown["about"] == "on amc1"


async def test_the_feed_names_a_batch_with_one_lookup_per_schedule_and_shows_ids_on_failure() -> (
    None
):
    asked: list[str] = []

    async def lookup(schedule_id: str) -> str | None:
        asked.append(schedule_id)
        if schedule_id == "broken":
            raise ConnectionError("scheduler down")
        return {"s-1": "Daily reach"}.get(schedule_id)

    feed = LiveFeed(KafkaSettings(), Topics(prefix=""), names=ScheduleNames(lookup))
    events = [
        summarise("schedule.fired", "", json.dumps({"schedule_id": sid}).encode())
        for sid in ("s-1", "s-1", "broken", "s-1")
    ] + [summarise("user.x", "", b'{"user_id": "u"}')]
    named = await feed.named(events)
    assert sorted(asked) == ["broken", "s-1"]
    assert [e.get("about") for e in named] == [
        "schedule Daily reach",
        "schedule Daily reach",
        None,
        "schedule Daily reach",
        "for u",
    ]
    assert named[2]["link"] == "/schedules/broken"
