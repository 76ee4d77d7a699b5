from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.contract import (
    ALL_EVENTS,
    ExecutionCompleted,
    ExecutionError,
    ExecutionRequested,
    InvalidEventError,
    Origin,
    OriginKind,
    TimeWindowType,
    WorkflowRun,
    decode_event,
)
from shared.contract.asyncapi import ROUTES, render
from shared.telemetry import event_span_attributes

DOCS = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def run(**overrides: object) -> WorkflowRun:
    values: dict[str, object] = {
        "user_id": "u",
        "instance_id": "i",
        "advertiser_id": "a",
        "marketplace_id": "m",
        "workflow_id": "w",
        "time_window_start": "2024-01-01T00:00:00",
        "time_window_end": "2024-01-08T00:00:00",
    }
    values.update(overrides)
    return WorkflowRun.model_validate(values)


def requested(request_id: str = "r-1") -> ExecutionRequested:
    return ExecutionRequested(
        request_id=request_id, origin=Origin(kind=OriginKind.EXTERNAL, id=request_id), run=run()
    )


def test_event_round_trips_through_bytes() -> None:
    event = requested()
    assert decode_event(ExecutionRequested, event.to_bytes()) == event
    assert event.key() == b"r-1"


def test_every_event_names_a_topic_key_and_route() -> None:
    topics = [e.topic for e in ALL_EVENTS]
    assert len(set(topics)) == len(topics)
    assert set(topics) == set(ROUTES)
    for event in ALL_EVENTS:
        assert event.key_field in event.model_fields, event.__name__


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{oops", "payload is not valid JSON"),
        (b"[1, 2]", "payload must be a JSON object, got list"),
        (b"{}", "unsupported schema_version None"),
        (b'{"schema_version": 2}', "unsupported schema_version 2"),
        (b'{"schema_version": 1}', "event_id, occurred_at: required"),
    ],
)
def test_bad_payloads_are_rejected_with_the_reason(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        decode_event(ExecutionRequested, payload)


def test_unknown_fields_are_rejected_not_ignored() -> None:
    data = json.loads(requested().to_bytes()) | {"surprise": 1}
    with pytest.raises(InvalidEventError, match="surprise: Extra inputs are not permitted"):
        decode_event(ExecutionRequested, json.dumps(data))


def test_external_request_origin_must_be_the_request_itself() -> None:
    with pytest.raises(ValueError, match="origin must be"):
        ExecutionRequested(
            request_id="r-1", origin=Origin(kind=OriginKind.SCHEDULE, id="r-1"), run=run()
        )


def test_explicit_window_needs_both_ends_in_order() -> None:
    with pytest.raises(ValueError, match="needs time_window_start and time_window_end"):
        run(time_window_end=None)
    with pytest.raises(ValueError, match="time_window_end must be after"):
        run(time_window_end="2023-12-31T00:00:00")
    relative = run(
        time_window_type=TimeWindowType.MOST_RECENT_WEEK,
        time_window_start=None,
        time_window_end=None,
    )
    assert relative.time_window_start is None


def test_completion_carries_result_or_error_matching_its_status() -> None:
    common = {
        "execution_id": uuid.uuid4(),
        "origin": Origin(kind=OriginKind.EXTERNAL, id="r"),
        "instance_id": "i",
        "user_id": "u",
    }
    with pytest.raises(ValueError, match="SUCCEEDED execution carries its result"):
        ExecutionCompleted(status="SUCCEEDED", **common)
    with pytest.raises(ValueError, match="FAILED execution carries its error"):
        ExecutionCompleted(status="FAILED", **common)
    failed = ExecutionCompleted(
        status="FAILED",
        error=ExecutionError(code="AMC_FAILED", message="boom", retryable=True),
        **common,
    )
    assert failed.error is not None


def test_committed_asyncapi_document_is_current() -> None:
    assert DOCS.read_text() == render(), (
        "docs/asyncapi.json is stale: run `python -m shared.contract.asyncapi > docs/asyncapi.json`"
    )


def test_span_attributes_carry_the_searchable_ids() -> None:
    attributes = event_span_attributes(requested("r-9"))
    assert attributes["amc.request_id"] == "r-9"
    assert attributes["amc.user_id"] == "u"
    assert attributes["amc.instance_id"] == "i"
    assert attributes["amc.origin.kind"] == "external"
    assert not any("token" in key for key in attributes)


def test_an_outcome_is_searchable_by_the_id_of_the_run_that_asked_for_it() -> None:
    run_id = str(uuid.uuid4())
    outcome = ExecutionCompleted(
        execution_id=uuid.uuid4(),
        origin=Origin(kind=OriginKind.SCHEDULE, id=run_id),
        status="FAILED",
        instance_id="i",
        user_id="u",
        error=ExecutionError(code="AMC_VALIDATION", message="bad query", retryable=False),
    )
    attributes = event_span_attributes(outcome)
    assert attributes["amc.run_id"] == run_id
    assert attributes["amc.origin.id"] == run_id
    assert "amc.week_id" not in attributes
