"""The values events carry: where a run came from, what it runs, how it ended."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from shared.contract.schema_rules import (
    conditional,
    every,
    exactly_one_of,
    later_than,
    together,
)

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
