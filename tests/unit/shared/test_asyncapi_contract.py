"""docs/asyncapi.json says what the consumers enforce: built from the document alone, the
smallest message and every example of each channel are accepted, and a message breaking any
documented rule is refused, by the document's schema and by the consumer, with a reason.

The consumer side is what every service runs on a record: `decode_event` with the model of
the record's topic.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared.contract import ALL_EVENTS, Event, InvalidEventError, decode_event

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json").read_text()
)
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
BASE = "urn:amc:asyncapi"
REGISTRY = Registry().with_resource(
    BASE, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
MODELS = {event.topic: event for event in ALL_EVENTS}


def channels() -> Iterator[tuple[str, str]]:
    """(topic, message name) of every channel the document lists, dead letters aside."""
    for channel in DOCUMENT["channels"].values():
        for name in channel["messages"]:
            if name != "DeadLetter":
                yield channel["address"], name


CHANNELS = sorted(channels())


def validator(name: str) -> Draft202012Validator:
    schema = {"$ref": f"{BASE}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=REGISTRY)


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def minimal(schema: dict[str, Any], *, later: bool = False) -> Any:
    """The smallest value the document allows, read from the schema alone."""
    schema = resolve(schema)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        return minimal(options[0], later=later)
    kind = schema.get("type")
    if kind == "object":
        return minimal_object(schema)
    if kind == "string":
        return {
            "uuid": "00000000-0000-4000-8000-000000000001",
            "date-time": "2024-01-08T00:00:00Z" if later else "2024-01-01T00:00:00Z",
            "date": "2024-01-08" if later else "2024-01-01",
        }.get(schema.get("format", ""), "x" * max(schema.get("minLength", 1), 1))
    if kind == "integer":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    raise AssertionError(f"no minimal value for {schema}")


def minimal_object(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    rules = schema.get("allOf", [])
    later_fields = {
        field
        for rule in rules
        for field, spec in rule.get("properties", {}).items()
        if "x-after" in spec
    }
    value = {
        field: minimal(properties[field], later=field in later_fields)
        for field in schema.get("required", [])
    }
    for rule in rules:
        if "oneOf" in rule:  # exactly one of some fields: the first one
            for field in rule["oneOf"][0]["required"]:
                value.setdefault(field, minimal(properties[field]))
        if "if" in rule:
            branch = rule["then"] if Draft202012Validator(rule["if"]).is_valid(value) else None
            branch = branch if branch is not None else rule.get("else", {})
            for field in branch.get("required", []):
                value.setdefault(field, minimal(properties[field], later=field in later_fields))
        for field, spec in rule.get("properties", {}).items():
            inner = spec.get("properties", {})
            fixed = {k: v["const"] for k, v in inner.items() if "const" in v}
            fixed |= {k: str(value[v["x-same-as"]]) for k, v in inner.items() if "x-same-as" in v}
            if fixed:
                value[field] = {**value[field], **fixed}
    return value


def consume(topic: str, payload: Any) -> Event:
    return decode_event(MODELS[topic], json.dumps(payload))


def examples(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = DOCUMENT["components"]["messages"][name]["examples"]
    return [example["payload"] for example in found]


@pytest.mark.parametrize(("topic", "name"), CHANNELS)
def test_the_smallest_documented_message_is_accepted(topic: str, name: str) -> None:
    payload = minimal({"$ref": f"#/components/schemas/{name}"})
    assert list(validator(name).iter_errors(payload)) == []
    assert consume(topic, payload).event_id is not None


@pytest.mark.parametrize(("topic", "name"), CHANNELS)
def test_every_documented_example_is_valid_and_accepted(topic: str, name: str) -> None:
    assert examples(name), f"{name} has no example in the document"
    for payload in examples(name):
        assert list(validator(name).iter_errors(payload)) == []
        assert consume(topic, payload).model_dump(mode="json") == payload


@pytest.mark.parametrize(("topic", "name"), CHANNELS)
def test_each_required_field_left_out_is_refused_naming_it(topic: str, name: str) -> None:
    example = examples(name)[0]
    for field in SCHEMAS[name]["required"]:
        broken = {k: v for k, v in example.items() if k != field}
        assert not validator(name).is_valid(broken), field
        with pytest.raises(InvalidEventError, match=field):
            consume(topic, broken)


@pytest.mark.parametrize(("topic", "name"), CHANNELS)
def test_unknown_fields_and_versions_are_refused(topic: str, name: str) -> None:
    example = examples(name)[0]
    extra = {**example, "surprise": 1}
    assert not validator(name).is_valid(extra)
    with pytest.raises(InvalidEventError, match="surprise"):
        consume(topic, extra)
    newer = {**example, "schema_version": 2}
    assert not validator(name).is_valid(newer)
    with pytest.raises(InvalidEventError, match="schema_version 2"):
        consume(topic, newer)


REQUESTS = [(t, n) for t, n in CHANNELS if "run" in SCHEMAS[n]["properties"]]


@pytest.mark.parametrize(("topic", "name"), REQUESTS)
def test_an_explicit_window_needs_both_ends_in_order(topic: str, name: str) -> None:
    example = examples(name)[0]
    for bound in ("time_window_start", "time_window_end"):
        broken = copy.deepcopy(example)
        del broken["run"][bound]
        assert not validator(name).is_valid(broken)
        with pytest.raises(InvalidEventError, match="EXPLICIT time window needs"):
            consume(topic, broken)
    reversed_window = copy.deepcopy(example)
    run = reversed_window["run"]
    run["time_window_start"], run["time_window_end"] = (
        run["time_window_end"],
        run["time_window_start"],
    )
    # x-after: documented, and enforced by the consumer (JSON Schema cannot compare fields).
    rules = SCHEMAS["WorkflowRun"]["allOf"]
    after = [r.get("properties", {}).get("time_window_end", {}) for r in rules]
    assert any(spec.get("x-after") == "time_window_start" for spec in after)
    with pytest.raises(InvalidEventError, match="time_window_end must be after"):
        consume(topic, reversed_window)
    relative = copy.deepcopy(example)
    relative["run"] = {
        k: v for k, v in relative["run"].items() if not k.startswith("time_window_s")
    } | {"time_window_type": "MOST_RECENT_WEEK"}
    del relative["run"]["time_window_end"]
    assert validator(name).is_valid(relative)
    consume(topic, relative)


@pytest.mark.parametrize(("topic", "name"), REQUESTS)
def test_the_origin_names_the_request_itself(topic: str, name: str) -> None:
    example = examples(name)[0]
    rule = next(r for r in SCHEMAS[name]["allOf"] if "origin" in r.get("properties", {}))
    same_as = rule["properties"]["origin"]["properties"]["id"]["x-same-as"]
    other = copy.deepcopy(example)
    other["origin"]["id"] = "not-" + str(example[same_as])
    with pytest.raises(InvalidEventError, match=f"id: {same_as}"):
        consume(topic, other)
    wrong_kind = copy.deepcopy(example)
    wrong_kind["origin"]["kind"] = next(
        k for k in ("schedule", "collection", "external") if k != example["origin"]["kind"]
    )
    assert not validator(name).is_valid(wrong_kind)
    with pytest.raises(InvalidEventError, match="origin must be"):
        consume(topic, wrong_kind)


def test_a_run_names_a_saved_workflow_or_inline_sql_never_both() -> None:
    example = examples("ExecutionRequested")[0]
    both = copy.deepcopy(example)
    both["run"]["sql_query"] = "SELECT 1"
    neither = copy.deepcopy(example)
    del neither["run"]["workflow_id"]
    for broken in (both, neither):
        assert not validator("ExecutionRequested").is_valid(broken)
        with pytest.raises(InvalidEventError, match="exactly one of workflow_id"):
            consume("execution.requested", broken)
    adhoc = copy.deepcopy(neither)
    adhoc["run"]["sql_query"] = "SELECT 1"
    assert validator("ExecutionRequested").is_valid(adhoc)
    consume("execution.requested", adhoc)


def test_account_ids_come_together_or_from_the_registry() -> None:
    example = examples("ExecutionRequested")[0]
    short = copy.deepcopy(example)
    del short["run"]["advertiser_id"], short["run"]["marketplace_id"]
    assert validator("ExecutionRequested").is_valid(short)
    consume("execution.requested", short)
    half = copy.deepcopy(example)
    del half["run"]["marketplace_id"]
    assert not validator("ExecutionRequested").is_valid(half)
    with pytest.raises(InvalidEventError, match="advertiser_id and marketplace_id together"):
        consume("execution.requested", half)


def test_an_unknown_time_zone_is_refused_naming_it() -> None:
    example = copy.deepcopy(examples("ExecutionRequested")[0])
    example["run"]["time_window_time_zone"] = "Mars/Olympus"
    with pytest.raises(InvalidEventError, match="Mars/Olympus"):
        consume("execution.requested", example)


def test_a_completion_carries_its_result_or_its_error() -> None:
    succeeded, failed = examples("ExecutionCompleted")
    assert (succeeded["status"], failed["status"]) == ("SUCCEEDED", "FAILED")
    no_result = {k: v for k, v in succeeded.items() if k != "result"}
    assert not validator("ExecutionCompleted").is_valid(no_result)
    with pytest.raises(InvalidEventError, match="carries its result"):
        consume("execution.completed", no_result)
    no_error = {**failed, "error": None}
    assert not validator("ExecutionCompleted").is_valid(no_error)
    with pytest.raises(InvalidEventError, match="carries its error"):
        consume("execution.completed", no_error)


def test_the_document_says_how_a_version_2_comes() -> None:
    description = DOCUMENT["info"]["description"]
    assert "schema_version 2" in description
    assert "alongside" in description
