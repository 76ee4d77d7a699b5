"""The envelope every event carries, and strict decoding of raw Kafka payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION: Literal[1] = 1
# Every event must carry these on the wire, though our own producers fill them in.
ENVELOPE_REQUIRED = ("event_id", "occurred_at", "schema_version")


def utcnow() -> datetime:
    return datetime.now(UTC)


class InvalidEventError(ValueError):
    """A payload that is not a valid event of the expected type; the message names what is wrong."""


class Event(BaseModel):
    """Base of every event: de-duplication key, time of the fact, and contract version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: ClassVar[str]
    key_field: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; the de-duplication key.")
    occurred_at: AwareDatetime = Field(
        default_factory=utcnow, description="When the fact happened (UTC)."
    )
    schema_version: Annotated[
        Literal[1],
        Field(description="Contract version; consumers reject unknown versions."),
    ] = SCHEMA_VERSION

    def key(self) -> bytes:
        """The Kafka message key: the aggregate id, so one aggregate's events stay in order."""
        return str(getattr(self, self.key_field)).encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return decode_event(cls, raw)


E = TypeVar("E", bound=Event)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "(payload)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def decode_event(model: type[E], raw: bytes | str) -> E:
    """Decode and validate one payload, or raise InvalidEventError naming what is wrong.

    The schema version is checked first so that a newer producer's event gets a clear
    "unsupported schema_version" answer rather than a list of unrelated field errors.
    """
    # A valid event is parsed and validated in one pass by pydantic's own JSON parser (half
    # the time of json.loads then model_validate); what it refuses or fills in is described
    # by the checks below, which a valid event never reaches.
    try:
        event = model.model_validate_json(raw)
    except ValidationError:
        pass
    else:
        if event.model_fields_set.issuperset(ENVELOPE_REQUIRED):
            return event
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEventError(f"payload must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidEventError(
            f"unsupported schema_version {version!r} for {model.topic} "
            f"(this consumer understands {SCHEMA_VERSION})"
        )
    missing = [name for name in ENVELOPE_REQUIRED if name not in data]
    if missing:
        # A default would be invented anew on each delivery: a redelivered event_id would
        # differ, and de-duplication would silently fail.
        raise InvalidEventError(
            f"invalid {model.topic} event: {', '.join(missing)}: required; set it once when "
            "the fact happens and keep it on every retry (event_id is the de-duplication key)"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(f"invalid {model.topic} event: {_describe(exc)}") from None
