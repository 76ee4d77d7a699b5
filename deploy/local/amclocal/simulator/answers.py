"""AMC's answers shared by the simulator's route modules: the error shape, media types,
and the Accept / Content-Type checks (errors.md: 406, 415)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from amclocal.simulator.config import RouteKind
from amclocal.simulator.executions import Instance
from amclocal.simulator.gate import AMC_MEDIA_TYPE, Reject

MEDIA_TYPE = AMC_MEDIA_TYPE

WORKFLOWS_MEDIA_TYPE = "application/vnd.amcworkflows.v1+json"
_ACCEPTABLE = ("*/*", "application/*", "application/json")

# Runs a route's front door: faults, identity, instance, rate; gives back the instance and a
# fault to answer after the request took effect, if one is due.
Admit = Callable[[Request, RouteKind, str], Awaitable[tuple[Instance, Reject | None]]]


def amc_error(
    status: int,
    code: str,
    details: str,
    media_type: str = MEDIA_TYPE,
    headers: dict[str, str] | None = None,
) -> Reject:
    """AMC's Error object, in the media type of the route's resource. Its `code` is "the HTTP
    status code of the response" (Amazon's OpenAPI, Error.code); `code` here only names the
    kind of refusal for readers of the simulator's code and is not sent."""
    del code
    body = {"code": str(status), "details": details}
    return Reject(status, body, headers, media_type=media_type)


# The start of the refusal of a request that names a field the simulator does not know; the
# contract guard reads it to tell a client's invention from a published field refused.
UNRECOGNIZED = "Unrecognized field(s): "


def unrecognized(fields: list[str], media_type: str = MEDIA_TYPE) -> Reject:
    return amc_error(400, "BAD_REQUEST", UNRECOGNIZED + ", ".join(fields), media_type)


# AMC's data types (Amazon's OpenAPI, inputParameters.dataType), and the simple ones an ARRAY
# parameter may hold (create-workflow.md, "Supported complex data types").
DATA_TYPES = frozenset(
    {
        "BINARY", "BOOLEAN", "BYTE", "CALENDAR_INTERVAL", "DATE", "DECIMAL", "DOUBLE",
        "FLOAT", "INTEGER", "LONG", "SHORT", "STRING", "TIMESTAMP",
    }
)  # fmt: skip
ARRAY_ELEMENT_TYPES = DATA_TYPES - {"CALENDAR_INTERVAL", "DECIMAL"}


def check_parameters(parameters: Any, where: str, media_type: str = MEDIA_TYPE) -> None:
    """inputParameters as published: named, with a known data type or an ARRAY of one."""
    if not isinstance(parameters, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters
    ):
        raise amc_error(
            400, "BAD_REQUEST", f"{where} must be a list of named parameters", media_type
        )
    for p in parameters:
        kind = p.get("dataType", "STRING")
        array = (
            isinstance(kind, dict)
            and kind.get("type") == "ARRAY"
            and kind.get("elementDataType") in ARRAY_ELEMENT_TYPES
        )
        if not (isinstance(kind, str) and kind in DATA_TYPES) and not array:
            raise amc_error(
                400,
                "BAD_REQUEST",
                f"{where}: parameter {p['name']} has an unknown dataType {kind!r}",
                media_type,
            )


def check_accept(request: Request, media_type: str) -> None:
    accept = request.headers.get("Accept")
    if accept is None:
        return
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(kind in (*_ACCEPTABLE, media_type) for kind in offered):
        raise amc_error(
            406, "NOT_ACCEPTABLE", f"The Accept header {accept!r} is not supported", media_type
        )


async def json_body(request: Request, media_type: str = MEDIA_TYPE) -> Any:
    kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", media_type):
        raise amc_error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"The Content-Type {kind or '(none)'!r} is not supported",
            media_type,
        )
    try:
        return json.loads(await request.body())
    except ValueError:
        raise amc_error(
            400, "BAD_REQUEST", "The request body is not valid JSON", media_type
        ) from None
