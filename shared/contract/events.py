"""Every event on the bus. Topic and key of each are class attributes: the single source."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from shared.contract.envelope import Event
from shared.contract.schema_rules import (
    conditional,
    every,
    exactly_one_of,
    later_than,
    origin_rule,
    together,
)
from shared.crypto import FINGERPRINT_PATTERN

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


class OriginKind(StrEnum):
    SCHEDULE = "schedule"
    COLLECTION = "collection"
    EXTERNAL = "external"


class Origin(BaseModel):
    """Who asked for a run: a schedule run, a collection week, or an external request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: OriginKind
    id: NonEmpty = Field(description="run_id, week_id or request_id")


class TimeWindowType(StrEnum):
    ALL = "ALL"
    EXPLICIT = "EXPLICIT"
    MOST_RECENT_DAY = "MOST_RECENT_DAY"
    MOST_RECENT_WEEK = "MOST_RECENT_WEEK"
    CURRENT_MONTH = "CURRENT_MONTH"
    PREVIOUS_MONTH = "PREVIOUS_MONTH"


class RunOptions(BaseModel):
    """AMC's run options, passed through as AMC defines them (CreateWorkflowExecutionRequest).
    Unset ones are not sent, and AMC's defaults apply. A sandbox instance's runs always get
    requireSyntheticData."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow_execution_timeout_s: int | None = Field(
        default=None,
        ge=900,
        le=86_400,
        description="workflowExecutionTimeoutSeconds: AMC stops the query after this; the "
        "poller's own timeout for the run follows it",
    )
    ignore_data_gaps: bool | None = Field(default=None, description="ignoreDataGaps")
    require_synthetic_data: bool | None = Field(default=None, description="requireSyntheticData")
    disable_aggregation_controls: bool | None = Field(
        default=None, description="disableAggregationControls (sandbox instances only)"
    )
    dry_run: bool | None = Field(
        default=None,
        description="dryRun: AMC only checks the run (the SQL, the parameters) and runs "
        'nothing: "without consuming quotas or compute resources", and "will not generate '
        "output results\" (Amazon's OpenAPI). The execution ends SUCCEEDED with no result, or "
        "FAILED (AMC_VALIDATION, not retryable) with AMC's reason; it is not counted towards "
        "the instance's daily cap",
    )


class WorkflowRun(BaseModel):
    """What to run at AMC, for whom, and over which time window. A saved workflow
    (workflow_id) or inline SQL (sql_query, an ad hoc run), exactly one of them. Advertiser
    and marketplace come from the poller's instance registry when left out (both or
    neither). An EXPLICIT window (the default type) needs time_window_start and
    time_window_end, the end after the start."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=every(
            exactly_one_of("workflow_id", "sql_query"),
            together("advertiser_id", "marketplace_id"),
            later_than("time_window_end", "time_window_start"),
            conditional(
                # Absent, time_window_type is EXPLICIT; "properties" holds vacuously then.
                {"properties": {"time_window_type": {"const": "EXPLICIT"}}},
                {
                    "required": ["time_window_start", "time_window_end"],
                    "properties": {
                        "time_window_start": {"type": "string"},
                        "time_window_end": {"type": "string"},
                    },
                },
            ),
        ),
    )

    user_id: NonEmpty
    instance_id: NonEmpty = Field(description="AMC instance id")
    advertiser_id: NonEmpty | None = Field(
        default=None,
        description="Amazon-Advertising-API-AdvertiserId; from the instance registry if absent",
    )
    marketplace_id: NonEmpty | None = Field(
        default=None,
        description="Amazon-Advertising-API-MarketplaceId; from the instance registry if absent",
    )
    workflow_id: NonEmpty | None = Field(default=None, description="Saved AMC workflow id")
    sql_query: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="Inline SQL for an ad hoc run (AMC's workflow.sqlQuery)",
    )
    output_format: Literal["CSV"] = Field(
        default="CSV",
        description="AMC delivers results as CSV only (its API has no output-format field); "
        "kept so that producers that send it stay valid",
    )
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="AMC takes string values: other JSON values are sent as their JSON text",
    )
    time_window_type: TimeWindowType = TimeWindowType.EXPLICIT
    time_window_start: datetime | None = Field(
        default=None, description="Start of an EXPLICIT window (inclusive)"
    )
    time_window_end: datetime | None = Field(
        default=None,
        description="End of an EXPLICIT window: the first moment after it (our convention; "
        "Amazon does not publish whether AMC includes timeWindowEnd, and calls the window "
        "nominal)",
    )
    time_window_time_zone: str = Field(
        default="UTC", description="IANA time zone of the window (e.g. America/New_York)"
    )
    options: RunOptions = Field(default_factory=RunOptions)

    @field_validator("time_window_time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _one_query_one_account(self) -> Self:
        if (self.workflow_id is None) == (self.sql_query is None):
            raise ValueError("give exactly one of workflow_id (a saved workflow) or sql_query")
        if (self.advertiser_id is None) != (self.marketplace_id is None):
            raise ValueError("give advertiser_id and marketplace_id together, or neither")
        return self

    @property
    def workflow_label(self) -> str:
        """The saved workflow's id, or `adhoc:<hash>` naming an ad hoc run's SQL."""
        if self.workflow_id is not None:
            return self.workflow_id
        assert self.sql_query is not None
        return "adhoc:" + hashlib.sha256(self.sql_query.encode()).hexdigest()[:12]

    @model_validator(mode="after")
    def _window_is_complete(self) -> Self:
        explicit = self.time_window_type is TimeWindowType.EXPLICIT
        if explicit and (self.time_window_start is None or self.time_window_end is None):
            raise ValueError("EXPLICIT time window needs time_window_start and time_window_end")
        if (
            self.time_window_start is not None
            and self.time_window_end is not None
            and self.time_window_end <= self.time_window_start
        ):
            raise ValueError("time_window_end must be after time_window_start")
        return self


class ExecutionStatus(StrEnum):
    RECEIVED = "RECEIVED"
    WAITING_FOR_TOKEN = "WAITING_FOR_TOKEN"
    QUEUED = "QUEUED"
    SUBMITTING = "SUBMITTING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMED_OUT,
    }
)

TerminalStatus = Literal["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"]


class ExecutionError(BaseModel):
    """Why an execution did not succeed. `retryable` tells requesters whether to try again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Literal[
        "REAUTH_REQUIRED",
        "UNKNOWN_USER",
        "AMC_VALIDATION",
        "AMC_FAILED",
        "AMC_REJECTED",
        "AMC_UNAVAILABLE",
        "AMC_ACCESS_DENIED",
        "UNKNOWN_INSTANCE",
        "SUBMISSION_UNKNOWN",
        "TIMED_OUT",
        "RESULTS_EXPIRED",
        "RESULTS_NOT_DOWNLOADABLE",
        "DOWNLOAD_FAILED",
        "CANCELLED",
        "INTERNAL",
    ] = Field(
        description="AMC_REJECTED: AMC ended the execution REJECTED (the message has AMC's "
        "statusReason); never retryable. RESULTS_NOT_DOWNLOADABLE: it SUCCEEDED at AMC but "
        "AMC's DOWNLOAD output channel is unavailable; the message says where the results "
        "went (the instance's bucket, AWS Clean Rooms); never retryable"
    )
    message: str = Field(max_length=4000)
    retryable: bool


class ResultLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(
        description="Where the result lives: a file:// directory or an object-store prefix "
        "(s3://bucket/prefix/instance=.../workflow=.../date=.../execution=...)"
    )
    row_count: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    checksum: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="sha256 of the result files' bytes, in file order (part-00000 first)",
    )
    files: list[str] = Field(
        default_factory=list, description="The result files under uri, in order (CSV)"
    )


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
