"""What AMC's reporting API sends and receives: requests, executions, saved workflows, instances."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from shared.clients.errors import ApiError
from shared.contract.values import TimeWindowType

log = logging.getLogger(__name__)

_Model = TypeVar("_Model", bound=BaseModel)

# yyyy-MM-dd'T'HH:mm:ss: AMC's format for window bounds and list filters (no offset).
LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True, slots=True)
class AmcAccount:
    """Which AMC instance a call is for, and the advertiser and marketplace it belongs to.
    `base_url`, when given, is the API host of the instance's region (else the client's)."""

    instance_id: str
    advertiser_id: str
    marketplace_id: str
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionOptions:
    """AMC's optional run settings; None leaves a field out (AMC's default applies)."""

    workflow_execution_timeout_s: int | None = None
    ignore_data_gaps: bool | None = None
    require_synthetic_data: bool | None = None
    disable_aggregation_controls: bool | None = None
    # dryRun: "processed but not submitted to compute ... validate workflow executions (e.g.,
    # the sqlQuery) without consuming quotas or compute resources" (Amazon's OpenAPI).
    dry_run: bool | None = None

    def to_body(self) -> dict[str, JsonValue]:
        fields: dict[str, JsonValue] = {
            "workflowExecutionTimeoutSeconds": self.workflow_execution_timeout_s,
            "ignoreDataGaps": self.ignore_data_gaps,
            "requireSyntheticData": self.require_synthetic_data,
            "disableAggregationControls": self.disable_aggregation_controls,
            "dryRun": self.dry_run,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """A run of a saved workflow (`workflow_id`) or of inline SQL (`sql_query`, an ad hoc
    run). Start and end are only sent for EXPLICIT windows.

    Only fields of Amazon's CreateWorkflowExecutionRequest are sent. Results are CSV: the
    document has no output-format field."""

    workflow_id: str | None
    time_window_type: TimeWindowType = TimeWindowType.EXPLICIT
    time_window_start: datetime | None = None
    time_window_end: datetime | None = None
    time_window_time_zone: str = "UTC"
    parameter_values: Mapping[str, JsonValue] = field(default_factory=dict)
    sql_query: str | None = None
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    # The rest of an inline workflow (an ad hoc run's inputParameters, outputColumns, ...):
    # Amazon's CreateWorkflowExecutionRequest.workflow is a whole Workflow.
    inline: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_body(self) -> dict[str, JsonValue]:
        body: dict[str, JsonValue] = {
            "timeWindowType": self.time_window_type.value,
            "timeWindowTimeZone": self.time_window_time_zone,
            "parameterValues": parameter_texts(self.parameter_values),
            **self.options.to_body(),
        }
        if self.sql_query is not None:
            body["workflow"] = {**self.inline, "sqlQuery": self.sql_query}
        else:
            body["workflowId"] = self.workflow_id
        if self.time_window_type is TimeWindowType.EXPLICIT:
            # Missing bounds are left out so that AMC itself names the problem.
            if self.time_window_start is not None:
                body["timeWindowStart"] = self.wall_time(self.time_window_start)
            if self.time_window_end is not None:
                body["timeWindowEnd"] = self.wall_time(self.time_window_end)
        return body

    def wall_time(self, moment: datetime) -> str:
        """AMC reads the window as wall-clock time in timeWindowTimeZone."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(self.time_window_time_zone))
        return moment.strftime(LOCAL_FORMAT)


def parameter_texts(values: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """parameterValues as Amazon's document types them: string values. Text goes as it is;
    numbers, booleans, lists and objects as their JSON text."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in values.items()
    }


class AmcStatus(StrEnum):
    """An execution's status at AMC.

    Amazon's OpenAPI (WorkflowExecution.status) publishes PENDING, RUNNING, SUCCEEDED, FAILED
    and CANCELLED. Amazon's own client (amazon-marketing-cloud-insights-on-aws,
    workflow_manager_services.py) also waits on PUBLISHING and ends on REJECTED, as a failure,
    so both are read as that client reads them. Any other text is UNKNOWN: logged, counted
    and followed as running (never past the execution timeout), never a crash."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PUBLISHING = "PUBLISHING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in (
            AmcStatus.SUCCEEDED,
            AmcStatus.FAILED,
            AmcStatus.REJECTED,
            AmcStatus.CANCELLED,
        )


class ChannelStatus(StrEnum):
    """WorkflowExecutionOutputChannelStatus of Amazon's OpenAPI: PENDING (expected later),
    AVAILABLE, UNAVAILABLE ("is not and will not be available ... because of known
    configuration or restrictions"), FAILED ("... due to an unexpected error")."""

    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class OutputChannel(BaseModel):
    """One entry of an execution's `outputChannels` (WorkflowExecutionOutputChannel): a way
    results leave AMC (DOWNLOAD: downloadUrls; PUBLISH: the instance's bucket at
    outputS3URI; ACR: AWS Clean Rooms) and whether this execution's results go that way."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str
    status: ChannelStatus
    status_reason: str | None = None
    acr_detail_page_url: str | None = None
    acr_member_id: str | None = None

    @classmethod
    def from_amc(cls, entry: object) -> OutputChannel | None:
        """An entry as Amazon's schema has it, or None when it is not one."""
        if not isinstance(entry, dict):
            return None
        channel = entry.get("channel")
        kind = channel.get("type") if isinstance(channel, dict) else None
        if not isinstance(kind, str) or not kind:
            return None
        try:
            status = ChannelStatus(str(entry.get("status")))
        except ValueError:
            status = ChannelStatus.UNKNOWN
        reason = entry.get("statusReason")
        page = entry.get("acrDetailPageUrl")
        member = channel.get("acrMemberId") if isinstance(channel, dict) else None
        return cls(
            type=kind,
            status=status,
            status_reason=reason if isinstance(reason, str) else None,
            acr_detail_page_url=page if isinstance(page, str) else None,
            acr_member_id=member if isinstance(member, str) else None,
        )


class ExecutionInfo(BaseModel):
    """One workflow execution as AMC reports it (fields we use; the rest is ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    workflow_execution_id: str = Field(alias="workflowExecutionId", min_length=1)
    workflow_id: str = Field(alias="workflowId")
    status: AmcStatus
    status_text: str = Field(default="", description="The status exactly as AMC sent it")
    create_time: datetime | None = Field(default=None, alias="createTime")
    # In UTC ('Z'), as AMC echoes the window back.
    time_window_start: datetime | None = Field(default=None, alias="timeWindowStart")
    time_window_end: datetime | None = Field(default=None, alias="timeWindowEnd")
    # The window as it was sent: wall time in the original zone, no offset.
    time_window_start_original: str | None = Field(default=None, alias="timeWindowStartOriginal")
    time_window_end_original: str | None = Field(default=None, alias="timeWindowEndOriginal")
    time_window_time_zone_original: str | None = Field(
        default=None, alias="timeWindowTimeZoneOriginal"
    )
    parameter_values: dict[str, JsonValue] = Field(default_factory=dict, alias="parameterValues")
    error_message: str | None = Field(default=None, alias="statusReason")
    output_channels: tuple[OutputChannel, ...] | None = Field(
        default=None,
        alias="outputChannels",
        description="None when AMC sent no outputChannels (Amazon's samples have none)",
    )
    output_s3_uri: str | None = Field(default=None, alias="outputS3URI")
    wait_until: datetime | None = Field(
        default=None,
        alias="waitUntil",
        description="The time before which AMC will not start it. Not a polling hint: AMC "
        "sets it an hour before createTime by default.",
    )

    @classmethod
    def from_amc(cls, body: Any) -> ExecutionInfo:
        """An execution answer, at the top level or wrapped in `workflowExecution`."""
        if isinstance(body, dict) and isinstance(body.get("workflowExecution"), dict):
            body = body["workflowExecution"]
        if isinstance(body, dict):
            status = body.get("status")
            body = {**body, "status_text": "" if status is None else str(status)}
            body["status"] = _status(status)
            channels = body.get("outputChannels")
            if isinstance(channels, list):
                read = (OutputChannel.from_amc(c) for c in channels)
                body["outputChannels"] = tuple(c for c in read if c is not None)
            else:
                body.pop("outputChannels", None)
        return parse_answer(cls, body)


def _status(value: object) -> str:
    try:
        status = AmcStatus(str(value))
    except ValueError:
        status = AmcStatus.UNKNOWN
    if status is AmcStatus.UNKNOWN:
        log.warning(
            "AMC reported an execution status %r that neither Amazon's OpenAPI nor its own "
            "client names; following it as running",
            value,
        )
    return status.value


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    executions: list[ExecutionInfo]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class DownloadUrls:
    """Pre-signed URLs (10 minutes) for the result files and AMC's metadata files."""

    results: list[str]
    metadata: list[str]


# The fields of Amazon's Workflow besides workflowId, sqlQuery and inputParameters, as its
# OpenAPI document publishes them (WorkflowManagementService_prod_3p.json, schema Workflow:
# outputColumns, inputSchema, filteredMetricsDiscriminatorColumn, privacyFilteringBehavior,
# outputFormat, query) and as Amazon's create-workflow guide adds them
# (en-us/guides/amazon-marketing-cloud/reporting/create-workflow.md, "Append aggregation
# threshold columns": distinctUserCountColumn, filteredReasonColumn). AMC's update takes its
# body "directly as the new workflow definition", so each of them must travel with a push.
WORKFLOW_SETTINGS = (
    "outputColumns",
    "inputSchema",
    "filteredMetricsDiscriminatorColumn",
    "filteredReasonColumn",
    "distinctUserCountColumn",
    "privacyFilteringBehavior",
    "outputFormat",
    "query",
)


@dataclass(frozen=True, slots=True)
class SavedWorkflow:
    """A workflow saved at AMC: its id, SQL, parameter definitions (`inputParameters`: name,
    dataType, defaultValue, ...) and every other published field it holds (`settings`, by
    AMC's names). A field AMC answers that its documents do not publish is not kept: it could
    not be sent back in an update that AMC is documented to accept."""

    workflow_id: str
    sql_query: str
    input_parameters: list[dict[str, JsonValue]] = field(default_factory=list)
    settings: dict[str, JsonValue] = field(default_factory=dict)

    def to_body(self) -> dict[str, JsonValue]:
        body: dict[str, JsonValue] = {"workflowId": self.workflow_id, "sqlQuery": self.sql_query}
        if self.input_parameters:
            body["inputParameters"] = list(self.input_parameters)
        for name in WORKFLOW_SETTINGS:
            if self.settings.get(name) is not None:
                body[name] = self.settings[name]
        return body

    @classmethod
    def from_amc(cls, body: Any) -> SavedWorkflow:
        if isinstance(body, dict) and isinstance(body.get("workflow"), dict):
            body = body["workflow"]  # the OpenAPI's GetWorkflowResponse wraps it
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("workflowId"), str)
            or not isinstance(body.get("sqlQuery", ""), str)
        ):
            raise ApiError("AMC answered with an unexpected workflow body")
        parameters = body.get("inputParameters") or []
        if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
            raise ApiError("AMC answered with an unexpected workflow body: inputParameters")
        settings = {n: body[n] for n in WORKFLOW_SETTINGS if body.get(n) is not None}
        return cls(body["workflowId"], body.get("sqlQuery", ""), parameters, settings)


@dataclass(frozen=True, slots=True)
class AmcAccountInfo:
    """An AMC account the user's token can see (AMC Administration API, /amc/accounts)."""

    account_id: str
    name: str
    marketplace_id: str


@dataclass(frozen=True, slots=True)
class AmcInstanceInfo:
    """An instance of an AMC account (/amc/instances): its id, name, API host, and type.
    `instance_type` is in Amazon's sample answer but not in its OpenAPI document."""

    instance_id: str
    name: str
    api_endpoint: str | None
    instance_type: str | None


def parse_answer(model: type[_Model], body: Any) -> _Model:
    """The body as `model`, or an ApiError naming the first field AMC got wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(f"AMC answered with an unexpected body: {where}: {first['msg']}") from None
