"""AMC's JSON shapes: reading a create request, writing an execution, time formats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amclocal.simulator.executions import Execution, Status, TimeWindow

WINDOW_TYPES = (
    "EXPLICIT",
    "MOST_RECENT_DAY",
    "MOST_RECENT_WEEK",
    "CURRENT_MONTH",
    "PREVIOUS_MONTH",
)
OUTPUT_FORMATS = ("CSV", "PARQUET")
_WINDOW_FORMAT = "%Y-%m-%dT%H:%M:%S"


class BadRequestError(ValueError):
    """The message names the field, as AMC's 400 answers do."""


@dataclass(frozen=True)
class CreateRequest:
    workflow_id: str
    window: TimeWindow
    output_format: str
    parameters: dict[str, object]


def parse_create(body: Any) -> CreateRequest:
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    workflow_id = body.get("workflowId")
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        raise BadRequestError("workflowId is required")
    window_type = body.get("timeWindowType", "EXPLICIT")
    if window_type not in WINDOW_TYPES:
        raise BadRequestError(f"timeWindowType must be one of {', '.join(WINDOW_TYPES)}")
    time_zone = body.get("timeWindowTimeZone", "UTC")
    try:
        ZoneInfo(str(time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequestError(f"timeWindowTimeZone {time_zone!r} is not a time zone") from None
    output_format = body.get("outputFormat", "CSV")
    if output_format not in OUTPUT_FORMATS:
        raise BadRequestError(f"outputFormat must be one of {', '.join(OUTPUT_FORMATS)}")
    parameters = body.get("parameterValues", {})
    if not isinstance(parameters, dict):
        raise BadRequestError("parameterValues must be an object")
    start = end = None
    if window_type == "EXPLICIT":
        start = _window_bound(body, "timeWindowStart")
        end = _window_bound(body, "timeWindowEnd")
        if end <= start:
            raise BadRequestError("timeWindowEnd must be after timeWindowStart")
    window = TimeWindow(
        window_type,
        start.strftime(_WINDOW_FORMAT) if start else None,
        end.strftime(_WINDOW_FORMAT) if end else None,
        str(time_zone),
    )
    return CreateRequest(workflow_id, window, str(output_format), parameters)


def _window_bound(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise BadRequestError(f"{name} is required for an EXPLICIT time window")
    try:
        return datetime.strptime(str(value), _WINDOW_FORMAT)
    except ValueError:
        raise BadRequestError(f"{name} must look like 2024-01-31T00:00:00") from None


def parse_creation_time(value: str | None, name: str) -> float | None:
    """An ISO-8601 query bound as epoch seconds; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(wall: float) -> str:
    return (
        datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def execution_json(execution: Execution, now: float) -> dict[str, Any]:
    """An execution as AMC's GET answers it, plus `waitUntil`, the simulator's polling hint."""
    body: dict[str, Any] = {
        "workflowExecutionId": execution.execution_id,
        "workflowId": execution.workflow_id,
        "status": execution.status.value,
        "creationTime": iso(execution.created_wall),
        "timeWindowType": execution.window.type,
        "timeWindowTimeZone": execution.window.time_zone,
        "outputFormat": execution.output_format,
        "parameterValues": execution.parameters,
    }
    if execution.window.start is not None:
        body["timeWindowStart"] = execution.window.start
        body["timeWindowEnd"] = execution.window.end
    if execution.started_at is not None:
        body["startTime"] = iso(execution.wall(execution.started_at))
    if execution.ended_at is not None:
        body["endTime"] = iso(execution.wall(execution.ended_at))
    if execution.status is Status.FAILED:
        body["statusReason"] = execution.failure_reason
    elif execution.status is Status.CANCELLED:
        body["statusReason"] = "Cancelled by the caller"
    wait_until = execution.wait_until(now)
    if wait_until is not None:
        body["waitUntil"] = iso(execution.wall(wait_until))
    return body
