"""Dead letters' pure parts: ids, ordering, replay headers, what a page may show."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from services.console.auth import API_KEY_PRINCIPAL, bearer
from services.console.dead_letters import (
    DLQ_TOPICS,
    REPLAY_HEADER,
    Letter,
    LetterId,
    decode,
    newest_first,
    replay_headers,
)
from services.console.replays import dlq_name
from services.console.settings import ConsoleSettings
from shared.contract import DeadLetter, Topics

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = Topics("p1.")


def dead_letter(
    payload: str = "{}", failed_at: datetime = T0, source: str = "p1.schedule.due"
) -> DeadLetter:
    return DeadLetter(
        source_topic=source,
        partition=2,
        offset=7,
        consumer="p1.amc-poller",
        reason="invalid schedule.due event: run: Field required",
        error_type="InvalidEventError",
        failed_at=failed_at,
        key="sched-1",
        headers={"traceparent": "00-abc-def-01", "x-origin": "test"},
        payload=payload,
    )


def record(letter: DeadLetter | bytes, topic: str = "p1.schedule.due.dlq") -> SimpleNamespace:
    value = letter if isinstance(letter, bytes) else letter.model_dump_json().encode()
    return SimpleNamespace(topic=topic, partition=1, offset=4, value=value)


def test_letter_ids_round_trip_and_bad_ones_are_refused() -> None:
    letter_id = LetterId("schedule.due.dlq", 1, 4)
    assert str(letter_id) == "schedule.due.dlq/1/4"
    assert LetterId.parse(" schedule.due.dlq/1/4 ") == letter_id
    for bad in ("schedule.due/1/4", "schedule.due.dlq/1", "schedule.due.dlq/x/4", "", "a/b/c"):
        with pytest.raises(ValueError, match=r"letter id|must be numbers"):
            LetterId.parse(bad)


def test_a_record_decodes_to_a_letter_named_by_its_own_place() -> None:
    letter = decode(TOPICS, record(dead_letter()))
    assert letter is not None
    assert letter.id == LetterId("schedule.due.dlq", 1, 4)
    assert letter.source == "schedule.due"
    assert letter.letter.offset == 7  # the refused record's place is kept apart


def test_records_that_are_no_letters_of_their_own_topic_are_skipped() -> None:
    assert decode(TOPICS, record(b"{not json")) is None
    # A letter must not choose where its payload goes: its source must be its dlq's topic.
    assert decode(TOPICS, record(dead_letter(source="p1.token.refreshed"))) is None
    assert decode(TOPICS, record(dead_letter(source="schedule.due"))) is None


def test_newest_first_and_bounded() -> None:
    letters = [
        Letter(LetterId("schedule.due.dlq", 0, i), dead_letter(failed_at=T0 + timedelta(i)), "s")
        for i in (3, 1, 4, 0, 2)
    ]
    assert [x.id.offset for x in newest_first(letters, 3)] == [4, 3, 2]


def test_replay_headers_keep_the_originals_and_name_the_letter() -> None:
    old = dead_letter().model_copy(
        update={"headers": {"x-origin": "test", REPLAY_HEADER: "schedule.due.dlq/0/1"}}
    )
    letter = Letter(LetterId("schedule.due.dlq", 1, 4), old, "schedule.due")
    headers = dict(replay_headers(letter))
    assert headers == {"x-origin": b"test", REPLAY_HEADER: b"schedule.due.dlq/1/4"}


def test_shown_payloads_keep_ids_and_states_only() -> None:
    payload = json.dumps(
        {
            "event_id": "e1",
            "user_id": "u-1",
            "access_token_encrypted": "gAAAAA-secret",
            "expires_at": "2026-01-01T01:00:00Z",
        }
    )
    letter = Letter(
        LetterId("token.refreshed.dlq", 0, 0),
        dead_letter(payload, source="p1.token.refreshed"),
        "token.refreshed",
    )
    assert letter.summary() == {"user_id": "u-1"}
    shown = json.dumps(letter.as_json())
    assert "gAAAAA-secret" not in shown
    assert "00-abc-def-01" not in shown  # header values stay out too; names are listed
    assert letter.as_json()["header_names"] == ["traceparent", "x-origin"]
    broken = Letter(LetterId("token.refreshed.dlq", 0, 1), dead_letter("{not json"), "x")
    assert broken.summary() == {}


def test_topic_filters_name_a_contract_topic() -> None:
    assert dlq_name("schedule.due") == "schedule.due.dlq"
    assert dlq_name("schedule.due.dlq") == "schedule.due.dlq"
    assert "token.refreshed.dlq" in DLQ_TOPICS
    with pytest.raises(ValueError, match="unknown topic"):
        dlq_name("no.such.topic")


def _request(authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_bearer_needs_the_api_key() -> None:
    settings = ConsoleSettings(api_key="the-key")
    principal = bearer(settings, _request("Bearer the-key"))
    assert principal is not None
    assert principal.name == API_KEY_PRINCIPAL
    assert bearer(settings, _request("bearer the-key")) is not None
    assert bearer(settings, _request("Bearer wrong")) is None
    assert bearer(settings, _request("Basic the-key")) is None
    assert bearer(settings, _request(None)) is None
    assert bearer(ConsoleSettings(api_key=None), _request("Bearer ")) is None
