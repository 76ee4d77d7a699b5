"""Every event on the bus. Topic and key of each are class attributes: the single source."""

from __future__ import annotations

from datetime import date
from typing import Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from shared.contract.envelope import Event
from shared.contract.schema_rules import (
    conditional,
    every,
    origin_rule,
)
from shared.contract.values import (
    ExecutionError,
    ExecutionStatus,
    NonEmpty,
    Origin,
    OriginKind,
    ResultLocation,
    TerminalStatus,
    WorkflowRun,
)
from shared.crypto import FINGERPRINT_PATTERN

# --- requests to the poller -------------------------------------------------------------


class ScheduleDue(Event):
    """A schedule fired: run this workflow for this time window. origin is
    {kind: schedule, id: run_id}; a retried or re-run fire time comes again under the same
    origin with a higher attempt (absent: 1)."""

    model_config = ConfigDict(json_schema_extra=origin_rule("schedule", "run_id"))

    topic = "schedule.due"
    key_field = "schedule_id"

    schedule_id: UUID
    run_id: UUID
    fire_time: AwareDatetime
    attempt: int = Field(
        default=1,
        ge=1,
        description="Attempt of this fire time: the poller runs one execution per"
        " (origin, attempt); a retry or re-run is a higher attempt",
    )
    origin: Origin
    run: WorkflowRun

    @model_validator(mode="after")
    def _origin_is_the_run(self) -> Self:
        if self.origin.kind is not OriginKind.SCHEDULE or self.origin.id != str(self.run_id):
            raise ValueError("origin must be {kind: schedule, id: run_id}")
        return self


class WeekRequested(Event):
    """Run this workflow for one week of a collection. origin is {kind: collection, id:
    week_id}; a retried week comes again under the same origin with a higher attempt."""

    model_config = ConfigDict(json_schema_extra=origin_rule("collection", "week_id"))

    topic = "week.requested"
    key_field = "collection_id"

    collection_id: UUID
    week_id: UUID
    week_start: date
    week_end: date
    attempt: int = Field(ge=1)
    origin: Origin
    run: WorkflowRun
    daily_share: int | None = Field(
        default=None,
        ge=1,
        description="At most this many of the collection's weeks are submitted to AMC per UTC"
        " day at the instance (its share of AMC's daily cap); absent: no share of its own, the"
        " weeks still wait behind scheduled and external runs for the instance's cap",
    )

    @model_validator(mode="after")
    def _origin_is_the_week(self) -> Self:
        if self.origin.kind is not OriginKind.COLLECTION or self.origin.id != str(self.week_id):
            raise ValueError("origin must be {kind: collection, id: week_id}")
        return self


class ExecutionRequested(Event):
    """The public trigger: run a workflow now. `request_id` makes the request idempotent;
    origin is {kind: external, id: request_id}."""

    model_config = ConfigDict(json_schema_extra=origin_rule("external", "request_id"))

    topic = "execution.requested"
    key_field = "request_id"

    request_id: NonEmpty
    origin: Origin
    run: WorkflowRun

    @model_validator(mode="after")
    def _origin_is_the_request(self) -> Self:
        if self.origin.kind is not OriginKind.EXTERNAL or self.origin.id != self.request_id:
            raise ValueError("origin must be {kind: external, id: request_id}")
        return self


# --- execution lifecycle (from the poller) ----------------------------------------------


class ExecutionSubmitted(Event):
    """AMC accepted the execution."""

    topic = "execution.submitted"
    key_field = "execution_id"

    execution_id: UUID
    amc_execution_id: NonEmpty
    instance_id: NonEmpty
    user_id: NonEmpty
    origin: Origin


class ExecutionStatusChanged(Event):
    """Any status transition of an execution."""

    topic = "execution.status_changed"
    key_field = "execution_id"

    execution_id: UUID
    origin: Origin
    previous_status: ExecutionStatus | None
    status: ExecutionStatus
    amc_execution_id: str | None = None
    reason: str | None = None


class ExecutionCompleted(Event):
    """Terminal state of an execution: a SUCCEEDED one carries its result (but a dry run,
    which AMC runs without output), any other its error."""

    model_config = ConfigDict(
        json_schema_extra=every(
            # Absent, dry_run is false; "properties" holds vacuously then.
            conditional(
                {"properties": {"status": {"const": "SUCCEEDED"}, "dry_run": {"const": False}}},
                {"required": ["result"], "properties": {"result": {"type": "object"}}},
            ),
            conditional(
                {"properties": {"status": {"not": {"const": "SUCCEEDED"}}}},
                {"required": ["error"], "properties": {"error": {"type": "object"}}},
            ),
        )
    )

    topic = "execution.completed"
    key_field = "execution_id"

    execution_id: UUID
    origin: Origin
    status: TerminalStatus
    amc_execution_id: str | None = None
    instance_id: NonEmpty
    user_id: NonEmpty
    error: ExecutionError | None = None
    result: ResultLocation | None = None
    dry_run: bool = Field(
        default=False,
        description="The run only asked AMC for its verdict (RunOptions.dry_run): SUCCEEDED "
        "means AMC found it valid, and there is no result",
    )

    @model_validator(mode="after")
    def _outcome_matches_status(self) -> Self:
        if self.status == "SUCCEEDED" and self.result is None and not self.dry_run:
            raise ValueError("a SUCCEEDED execution carries its result")
        if self.status != "SUCCEEDED" and self.error is None:
            raise ValueError(f"a {self.status} execution carries its error")
        return self


# --- tokens ------------------------------------------------------------------------------


class TokenRefreshRequested(Event):
    """AMC said 401, or no valid token is cached for this user."""

    topic = "token.refresh_requested"
    key_field = "user_id"

    user_id: NonEmpty
    reason: str = Field(default="", max_length=500)
    refused_token_fp: str | None = Field(
        default=None,
        pattern=FINGERPRINT_PATTERN,
        description="The access token AMC refused, by fingerprint (shared.crypto."
        "token_fingerprint), never the token: when it is the token service's current one, "
        "that token is refreshed even if it looks fresh; when it is not, the current (newer) "
        "one is sent again.",
    )


class TokenRefreshed(Event):
    """A fresh access token. The token is Fernet-encrypted under the shared event key."""

    topic = "token.refreshed"
    key_field = "user_id"

    user_id: NonEmpty
    access_token_encrypted: str = Field(
        min_length=1, description="Fernet token of the access token (shared event key)"
    )
    expires_at: AwareDatetime
    issued_at: AwareDatetime | None = Field(
        default=None,
        description="When LWA issued this access token. A revocation withdraws all of a "
        "user's access tokens, so one issued before AMC refused another is no newer than "
        "the refused one (None: not known, from a producer that does not say).",
    )


class TokenRefreshFailed(Event):
    topic = "token.refresh_failed"
    key_field = "user_id"

    user_id: NonEmpty
    reauth_required: bool
    reason: str = Field(max_length=2000)


# --- notifications -----------------------------------------------------------------------


class SchedulePaused(Event):
    topic = "schedule.paused"
    key_field = "schedule_id"

    schedule_id: UUID
    reason: str
    consecutive_failures: int = Field(ge=0)


class CollectionCompleted(Event):
    topic = "collection.completed"
    key_field = "collection_id"

    collection_id: UUID
    status: Literal["COMPLETED", "COMPLETED_WITH_FAILURES", "CANCELLED"]
    weeks_total: int = Field(ge=0)
    weeks_succeeded: int = Field(ge=0)
    weeks_failed: int = Field(ge=0)


# --- dead letters ------------------------------------------------------------------------


class DeadLetter(BaseModel):
    """What a consumer writes to `<topic>.dlq`: the original message and why it was refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_topic: str
    partition: int
    offset: int
    consumer: str = Field(description="Service (consumer group) that refused it")
    reason: str
    error_type: str
    failed_at: AwareDatetime
    key: str | None
    headers: dict[str, str]
    payload: str = Field(description="Original payload, decoded as UTF-8 with replacement")


ALL_EVENTS: tuple[type[Event], ...] = (
    ScheduleDue,
    WeekRequested,
    ExecutionRequested,
    ExecutionSubmitted,
    ExecutionStatusChanged,
    ExecutionCompleted,
    TokenRefreshRequested,
    TokenRefreshed,
    TokenRefreshFailed,
    SchedulePaused,
    CollectionCompleted,
)
