"""AMC's JSON shapes: reading a create request, writing an execution, time formats.

Everything here follows docs/amc/workflow-management.openapi.json (transcribed from Amazon's
OpenAPI document) and Amazon's sample responses: which fields a create may carry and their
types, the window echoed in UTC with 'Z' beside the original wall time and zone, createTime,
and waitUntil an hour before createTime as every sample shows it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amclocal.simulator.answers import UNRECOGNIZED
from amclocal.simulator.contract import schema_properties
from amclocal.simulator.executions import Execution, Status, TimeWindow

WINDOW_TYPES = (
    "ALL",
    "CURRENT_MONTH",
    "EXPLICIT",
    "MOST_RECENT_DAY",
    "MOST_RECENT_WEEK",
    "PREVIOUS_MONTH",
)
LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"
# CreateWorkflowExecutionRequest's properties (plus ignoreDataGaps, which Amazon's notebook
# sends and every sample response echoes). Anything else is refused: AMC's document lists no
# other field, and a client that invents one should hear about it here.
_BOOLEAN_FIELDS = (
    "ignoreDataGaps",
    "requireSyntheticData",
    "disableAggregationControls",
    "dryRun",
    "skipPublish",
)
_KNOWN_FIELDS = frozenset(
    {
        "workflowId",
        "workflow",
        "timeWindowType",
        "timeWindowStart",
        "timeWindowEnd",
        "timeWindowTimeZone",
        "parameterValues",
        "workflowExecutionTimeoutSeconds",
        "maxCertifiedTime",
        "maxDimensionTime",
        "advertisers",
        "additionalAcrResultsReceivers",
        *_BOOLEAN_FIELDS,
    }
)
# Amazon's samples show 21600 when none is asked for; the document allows 900 to 86400.
DEFAULT_TIMEOUT_S = 21_600
_TIMEOUT_RANGE = (900, 86_400)
# Every sample response has waitUntil one hour before createTime and expireTime a day after.
_WAIT_UNTIL_BEFORE_CREATE = timedelta(hours=1)
_EXPIRE_AFTER_CREATE = timedelta(days=1)


class BadRequestError(ValueError):
    """The message names the field, as AMC's 400 answers do."""


@dataclass(frozen=True)
class CreateRequest:
    workflow_id: str
    sql_query: str | None
    window: TimeWindow
    parameters: dict[str, str]
    timeout_seconds: int
    flags: dict[str, bool]
    # An ad hoc run's inline workflow (every field of Amazon's Workflow); None for a saved one.
    inline: dict[str, Any] | None = None


def parse_create(body: Any) -> CreateRequest:
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    unknown = sorted(set(body) - _KNOWN_FIELDS)
    if unknown:
        raise BadRequestError(UNRECOGNIZED + ", ".join(unknown))
    workflow_id, sql_query = _workflow(body)
    inline = body.get("workflow")
    window_type = body.get("timeWindowType", "MOST_RECENT_DAY")
    if window_type not in WINDOW_TYPES:
        raise BadRequestError(f"timeWindowType must be one of {', '.join(WINDOW_TYPES)}")
    time_zone = body.get("timeWindowTimeZone", "UTC")
    if not isinstance(time_zone, str) or not _is_zone(time_zone):
        raise BadRequestError(f"timeWindowTimeZone {time_zone!r} is not a time zone")
    parameters = body.get("parameterValues", {})
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise BadRequestError("parameterValues must be an object of string values")
    timeout = body.get("workflowExecutionTimeoutSeconds", DEFAULT_TIMEOUT_S)
    if (
        not isinstance(timeout, int)
        or isinstance(timeout, bool)
        or not _TIMEOUT_RANGE[0] <= timeout <= _TIMEOUT_RANGE[1]
    ):
        raise BadRequestError(
            "workflowExecutionTimeoutSeconds must be an integer from "
            f"{_TIMEOUT_RANGE[0]} to {_TIMEOUT_RANGE[1]}"
        )
    flags: dict[str, bool] = {}
    for name in _BOOLEAN_FIELDS:
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise BadRequestError(f"{name} must be a boolean")
        flags[name] = value
    start = end = None
    if window_type == "EXPLICIT":
        start = _window_bound(body, "timeWindowStart")
        end = _window_bound(body, "timeWindowEnd")
        if end <= start:
            raise BadRequestError("timeWindowEnd must be after timeWindowStart")
    window = TimeWindow(
        window_type,
        start.strftime(LOCAL_FORMAT) if start else None,
        end.strftime(LOCAL_FORMAT) if end else None,
        time_zone,
    )
    return CreateRequest(
        workflow_id,
        sql_query,
        window,
        dict(parameters),
        timeout,
        flags,
        inline if isinstance(inline, dict) else None,
    )


def _workflow(body: dict[str, Any]) -> tuple[str, str | None]:
    """workflowId, or an inline workflow's sqlQuery (an ad hoc run): exactly one of them."""
    workflow_id = body.get("workflowId")
    inline = body.get("workflow")
    if workflow_id is not None and inline is not None:
        raise BadRequestError("workflowId cannot be populated at the same time as sqlQuery")
    if inline is not None:
        sql = inline.get("sqlQuery") if isinstance(inline, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            raise BadRequestError("workflow.sqlQuery is required for an ad hoc execution")
        assert isinstance(inline, dict)
        unknown = sorted(set(inline) - schema_properties("Workflow"))
        if unknown:
            raise BadRequestError(UNRECOGNIZED + ", ".join(f"workflow.{n}" for n in unknown))
        parameters = inline.get("inputParameters", [])
        if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters
        ):
            raise BadRequestError("workflow.inputParameters must be a list of named parameters")
        return f"transient_{uuid.uuid5(uuid.NAMESPACE_URL, sql)}", sql
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        raise BadRequestError("workflowId is required if a sqlQuery is not provided")
    return workflow_id, None


def _window_bound(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise BadRequestError(f"{name} is required for an EXPLICIT time window")
    return parse_local(value, name)


def parse_local(value: object, name: str) -> datetime:
    """yyyy-MM-dd'T'HH:mm:ss exactly: AMC's format for window bounds and creation filters."""
    try:
        moment = datetime.strptime(str(value), LOCAL_FORMAT)
    except ValueError:
        raise BadRequestError(
            f"{name} must be in the format yyyy-MM-dd'T'HH:mm:ss (e.g. 2019-08-14T16:12:34)"
        ) from None
    return moment


def parse_creation_filter(value: str | None, name: str, zone: ZoneInfo) -> float | None:
    """A list filter (wall time in `timeZone`) as epoch seconds."""
    if value is None:
        return None
    return parse_local(value, name).replace(tzinfo=zone).timestamp()


def zone_of(value: str | None, name: str) -> ZoneInfo:
    text = value or "UTC"
    if not _is_zone(text):
        raise BadRequestError(f"{name} {text!r} is not a time zone")
    return ZoneInfo(text)


def _is_zone(text: str) -> bool:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def utc_text(wall: float) -> str:
    """yyyy-MM-dd'T'HH:mm:ss'Z', as AMC writes createTime, waitUntil and the UTC window."""
    return datetime.fromtimestamp(int(wall), UTC).strftime(LOCAL_FORMAT) + "Z"


def _window_in_utc(local: str, zone: str) -> str:
    moment = datetime.strptime(local, LOCAL_FORMAT).replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC).strftime(LOCAL_FORMAT) + "Z"


def execution_json(execution: Execution) -> dict[str, Any]:
    """An execution as AMC's create, get and list answer it (top level, like the samples)."""
    created = execution.created_wall
    body: dict[str, Any] = {
        "workflowExecutionId": execution.execution_id,
        "workflowId": execution.workflow_id,
        "status": _status_text(execution),
        "createTime": utc_text(created),
        "lastUpdatedTime": utc_text(execution.updated_wall),
        "expireTime": utc_text(created + _EXPIRE_AFTER_CREATE.total_seconds()),
        "waitUntil": utc_text(created - _WAIT_UNTIL_BEFORE_CREATE.total_seconds()),
        "executionCategory": "AD_HOC",
        "dataGaps": [],
        "ignoreDataGaps": execution.flags.get("ignoreDataGaps", False),
        "disableAggregationControls": execution.flags.get("disableAggregationControls", False),
        "parameterValues": execution.parameters,
        "timeWindowTimeZoneOriginal": execution.window.time_zone,
        "workflowExecutionTimeoutSeconds": execution.timeout_seconds,
    }
    if execution.flags.get("requireSyntheticData"):
        body["requireSyntheticData"] = True
    window = execution.window
    if window.start is not None and window.end is not None:
        body["timeWindowStart"] = _window_in_utc(window.start, window.time_zone)
        body["timeWindowEnd"] = _window_in_utc(window.end, window.time_zone)
        body["timeWindowStartOriginal"] = window.start
        body["timeWindowEndOriginal"] = window.end
    if execution.status is Status.SUCCEEDED:
        body["outputS3URI"] = "N/A"
    if execution.status in (Status.FAILED, Status.REJECTED) and execution.failure_reason:
        body["statusReason"] = execution.failure_reason
    body["outputChannels"] = output_channels(execution)
    return body


def _status_text(execution: Execution) -> str:
    running_as = execution.behavior.running_status
    if execution.status is Status.RUNNING and running_as is not None:
        return running_as
    return execution.status.value


def download_available(execution: Execution) -> bool:
    return execution.status is Status.SUCCEEDED and execution.behavior.download_channel == (
        "AVAILABLE"
    )


def output_channels(execution: Execution) -> list[dict[str, Any]]:
    """WorkflowExecution.outputChannels as Amazon's OpenAPI defines it: every channel of the
    instance, each PENDING while the execution may still produce output. What a channel
    shows after an execution ended without success is not published: the simulator says
    UNAVAILABLE with a reason (its own assumption; the client reads channels only after
    SUCCEEDED)."""
    behavior = execution.behavior
    kinds = ["DOWNLOAD", *(["PUBLISH"] if behavior.publish_channel else [])]
    channels = []
    for kind in kinds:
        entry: dict[str, Any] = {"channel": {"type": kind}}
        if execution.status in (Status.PENDING, Status.RUNNING):
            entry["status"] = "PENDING"
        elif execution.status is not Status.SUCCEEDED:
            entry["status"] = "UNAVAILABLE"
            entry["statusReason"] = f"The workflow execution is {execution.status.value}"
        elif kind == "DOWNLOAD" and behavior.download_channel != "AVAILABLE":
            entry["status"] = behavior.download_channel
            entry["statusReason"] = behavior.download_unavailable_reason
        else:
            entry["status"] = "AVAILABLE"
        channels.append(entry)
    return channels
