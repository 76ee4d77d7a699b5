"""AMC's workflow-execution routes and the pre-signed result downloads, as Amazon publishes them.

The routes, methods, fields and status codes are those of docs/amc/workflow-management.openapi.json
(transcribed from Amazon's OpenAPI document; sources named there): cancel is
PUT {"status": "CANCELLED"}, there is no DELETE; list filters are yyyy-MM-dd'T'HH:mm:ss in
`timeZone` and leave CANCELLED executions out unless asked; errors are {code, details}.
Result URLs behave like S3 pre-signed URLs: they live 10 minutes (X-Amz-Expires=600) and an
expired one answers 403 "Request has expired" in S3's XML.

What Amazon does not document is marked "(not documented)" where the simulator had to choose.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from amclocal.simulator.answers import (
    MEDIA_TYPE,
    WORKFLOWS_MEDIA_TYPE,
    amc_error,
    check_accept,
    json_body,
)
from amclocal.simulator.config import RouteKind
from amclocal.simulator.dryrun import dry_run_problem
from amclocal.simulator.executions import Execution, Instance, Status
from amclocal.simulator.gate import Reject, inject_faults, record_of
from amclocal.simulator.identity import AccessGrant
from amclocal.simulator.state import SimState
from amclocal.simulator.throttle import retry_after_header
from amclocal.simulator.wire import (
    BadRequestError,
    CreateRequest,
    download_available,
    execution_json,
    parse_create,
    parse_creation_filter,
    zone_of,
)
from amclocal.simulator.workflow_routes import workflow_router

BASE = "/amc/reporting/{instance_id}/workflowExecutions"
RESULTS = "/results/{execution_id}/{file_path:path}"
_METADATA_FILE = "metadata/workflowExecution.json"
_CSV_BATCH_ROWS = 1000
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
# What a client may name in Accept / Content-Type for these routes (errors.md: 406 and 415).
_MEDIA_TYPES = {RouteKind.WORKFLOWS: WORKFLOWS_MEDIA_TYPE}


def _answer(body: Any) -> JSONResponse:
    return JSONResponse(body, media_type=MEDIA_TYPE)


def _within_daily_cap(instance: Instance, cap: int, wall: float) -> None:
    """Amazon documents the cap (30 a day per instance, across all workflow ids) but not the
    answer past it, nor when "a day" starts. (not documented) The simulator counts from
    00:00 UTC and answers 429, the status Amazon documents for "too many requests", with a
    Retry-After of the seconds to the next 00:00 UTC. Clients should avoid it, not rely on it."""
    if cap <= 0:
        return
    midnight = datetime.fromtimestamp(wall, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight.timestamp()
    # A dry run is "without consuming quotas" (Amazon's OpenAPI, dryRun): not counted.
    today = sum(
        1
        for e in instance.executions.values()
        if e.created_wall >= since and not e.flags.get("dryRun")
    )
    if today >= cap:
        tomorrow = since + 86_400
        raise amc_error(
            429,
            "TOO_MANY_REQUESTS",
            f"Instance {instance.instance_id} has reached its limit of {cap} workflow "
            "executions for today",
            headers={"Retry-After": retry_after_header(tomorrow - wall)},
        )


def _dry_run(
    state: SimState, instance: Instance, wanted: CreateRequest, execution: Execution, now: float
) -> None:
    """Not submitted to compute: complete at once, FAILED with the problem if there is one."""
    if wanted.inline is not None:
        sql, parameters = wanted.sql_query, wanted.inline.get("inputParameters", [])
    else:
        saved = instance.workflows.get(wanted.workflow_id, {})
        sql, parameters = saved.get("sqlQuery"), saved.get("inputParameters", [])
    behavior = state.amc.behaviors.get(execution.workflow_id)
    problem = dry_run_problem(sql, parameters, wanted.parameters, behavior)
    execution.ready_at = now
    execution.running_seconds = 0.0
    execution.rows = 0
    execution.outcome = Status.FAILED if problem else Status.SUCCEEDED
    execution.failure_reason = problem


def amc_router(state: SimState) -> APIRouter:
    router = APIRouter()

    async def admit(
        request: Request, kind: RouteKind, instance_id: str
    ) -> tuple[Instance, Reject | None]:
        """Faults, then 406, 401, 400, 404, 429 and 403 in that order, as AMC's front door does
        (the order among them is not documented). Also hands back a fault to answer after the
        request took effect, if one is due."""
        record = record_of(request)
        record.kind = kind
        record.instance_id = instance_id
        media_type = _MEDIA_TYPES.get(kind, MEDIA_TYPE)
        try:
            instance, late = await checked(request, kind, instance_id, media_type)
        except Reject as refused:
            # Errors come in the media type of the route's resource: a workflows route's
            # 401 in the executions' type is refused by the contract guard (issue 21).
            refused.media_type = _retyped(refused.media_type, media_type)
            raise
        if late is not None:
            late.media_type = _retyped(late.media_type, media_type)
        return instance, late

    async def checked(
        request: Request, kind: RouteKind, instance_id: str, media_type: str
    ) -> tuple[Instance, Reject | None]:
        late = await inject_faults(state, kind)
        check_accept(request, media_type)
        now = state.now()
        grant = authenticate(state, request, now)
        instance = state.amc.instances.get(instance_id)
        if instance is None:
            raise amc_error(404, "NOT_FOUND", f"Instance {instance_id} was not found", media_type)
        wait = state.limiter.admit(instance_id, now, state.config.rate_limit_per_second)
        if wait is not None:
            # In the route's own media type: the document gives each resource's 429 in it.
            raise amc_error(
                429,
                "TOO_MANY_REQUESTS",
                "Rate exceeded",
                media_type,
                headers={"Retry-After": retry_after_header(wait)},
            )
        _authorize(request, instance, grant)
        instance.advance(now, state.config.max_running)
        return instance, late

    def execution_of(request: Request, instance: Instance, execution_id: str) -> Execution:
        record_of(request).execution_id = execution_id
        execution = instance.executions.get(execution_id)
        if execution is None:
            raise amc_error(404, "NOT_FOUND", f"Workflow execution {execution_id} was not found")
        return execution

    router.include_router(workflow_router(state, admit))

    @router.post(BASE)
    async def create(request: Request, instance_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.CREATE, instance_id)
        body = await json_body(request)
        record = record_of(request)
        if isinstance(body, dict):
            record.workflow_id = _text_or_none(body.get("workflowId"))
            record.time_window_type = _text_or_none(body.get("timeWindowType"))
            record.time_window_start = _text_or_none(body.get("timeWindowStart"))
            record.time_window_end = _text_or_none(body.get("timeWindowEnd"))
            record.time_window_time_zone = _text_or_none(body.get("timeWindowTimeZone"))
            parameters = body.get("parameterValues")
            record.parameter_values = parameters if isinstance(parameters, dict) else None
        try:
            wanted = parse_create(body)
        except BadRequestError as error:
            raise amc_error(400, "BAD_REQUEST", str(error)) from None
        if instance.sandbox and not wanted.flags.get("requireSyntheticData"):
            # (not documented: what AMC answers here; Amazon's notebook says a sandbox
            # instance's runs must set requireSyntheticData.)
            raise amc_error(
                400, "BAD_REQUEST", "requireSyntheticData must be true on a sandbox instance"
            )
        record.flags = {k: v for k, v in wanted.flags.items() if v}
        record.timeout_seconds = wanted.timeout_seconds
        record.sql_query = wanted.sql_query
        dry_run = wanted.flags.get("dryRun", False)
        if not dry_run:
            _within_daily_cap(instance, state.config.daily_execution_cap, time.time())
        now = state.now()
        execution = state.amc.create(
            instance, wanted, now=now, wall=time.time(), config=state.config, rng=state.rng
        )
        if dry_run:
            _dry_run(state, instance, wanted, execution, now)
        instance.advance(now, state.config.max_running)
        record.execution_id = execution.execution_id
        if late is not None:
            raise late
        return _answer(execution_json(execution))

    @router.get(BASE)
    async def list_executions(request: Request, instance_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.LIST, instance_id)
        query = request.query_params
        try:
            zone = zone_of(query.get("timeZone"), "timeZone")
            low = parse_creation_filter(query.get("minCreationTime"), "minCreationTime", zone)
            high = parse_creation_filter(query.get("maxCreationTime"), "maxCreationTime", zone)
            workflow_id = query.get("workflowId")
            if low is None and not workflow_id:
                # "minCreationTime: optional if workflow id is provided" and the reverse.
                raise BadRequestError("minCreationTime or workflowId is required")
            include_cancelled = _flag(query.get("includeCancelled"), "includeCancelled")
            ascending = _flag(query.get("sortAscending"), "sortAscending")
            limit = _limit(query.get("limit"))
            offset = _decode_page_token(query.get("nextToken"))
        except BadRequestError as error:
            raise amc_error(400, "BAD_REQUEST", str(error)) from None
        # createTime has whole seconds, and so do the filters: compare at that precision.
        matching = [
            e
            for e in instance.executions.values()
            if (low is None or int(e.created_wall) >= low)
            and (high is None or int(e.created_wall) <= high)
            and (not workflow_id or e.workflow_id == workflow_id)
            and (include_cancelled or e.status is not Status.CANCELLED)
        ]
        matching.sort(key=lambda e: e.seq, reverse=not ascending)
        size = min(limit, state.config.page_size)
        answer: dict[str, Any] = {
            "executions": [execution_json(e) for e in matching[offset : offset + size]]
        }
        if offset + size < len(matching):
            answer["nextToken"] = _encode_page_token(offset + size)
        if late is not None:
            raise late
        return _answer(answer)

    @router.get(BASE + "/{execution_id}")
    async def get(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.GET, instance_id)
        execution = execution_of(request, instance, execution_id)
        if late is not None:
            raise late
        return _answer(execution_json(execution))

    @router.put(BASE + "/{execution_id}")
    async def update(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        """UpdateWorkflowExecution: status CANCELLED while PENDING or RUNNING; a FAILED,
        SUCCEEDED or CANCELLED one answers 400. Other fields are ignored, as documented."""
        instance, late = await admit(request, RouteKind.CANCEL, instance_id)
        execution = execution_of(request, instance, execution_id)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise amc_error(400, "BAD_REQUEST", "The request body must be a JSON object")
        wanted = body.get("status")
        if wanted is not None:
            if wanted != Status.CANCELLED.value:
                raise amc_error(400, "BAD_REQUEST", "status can only be updated to CANCELLED")
            if execution.status not in (Status.PENDING, Status.RUNNING):
                raise amc_error(
                    400,
                    "BAD_REQUEST",
                    f"Cannot update the status of a {execution.status.value} workflow execution",
                )
            now = state.now()
            instance.cancel(execution, now)
            instance.advance(now, state.config.max_running)
        if late is not None:
            raise late
        return _answer({})

    @router.get(BASE + "/{execution_id}/downloadUrls")
    async def download_urls(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.DOWNLOAD_URLS, instance_id)
        execution = execution_of(request, instance, execution_id)
        if (
            not download_available(execution)
            or execution.results_expired
            or execution.flags.get("dryRun")  # "will not generate output results"
        ):
            # get-your-results.md gives this text; its status code is not documented.
            raise amc_error(
                400,
                "BAD_REQUEST",
                f"Execution with ID {execution.execution_id} is unavailable for download.",
            )
        signed_at = time.time()
        behavior = state.amc.behaviors.get(execution.workflow_id)
        if behavior is not None and execution.url_answers < behavior.stale_url_answers:
            signed_at -= state.config.url_ttl_seconds + 60
        execution.url_answers += 1
        base = str(request.base_url).rstrip("/")

        def url(file_path: str) -> str:
            return base + _presign(execution, file_path, signed_at, state.config.url_ttl_seconds)

        if late is not None:
            raise late
        return _answer(
            {
                "downloadUrls": [url(_result_file(i)) for i in range(execution.files)],
                "metadataDownloadUrls": [url(_METADATA_FILE)],
            }
        )

    @router.get(RESULTS)
    async def results(request: Request, execution_id: str, file_path: str) -> Response:
        record = record_of(request)
        record.kind = RouteKind.RESULTS
        record.execution_id = execution_id
        if (late := await inject_faults(state, RouteKind.RESULTS)) is not None:
            raise late
        execution = state.amc.find(execution_id)
        if execution is not None:
            record.instance_id = execution.instance_id
        query = request.query_params
        if execution is None or not _signed(execution, file_path, query):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if _expired(query):
            return _s3_error(403, "AccessDenied", "Request has expired")
        index = _file_index(file_path, execution.files)
        if execution.results_expired or (index is None and file_path != _METADATA_FILE):
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if index is None:
            return Response(_metadata(execution), media_type="application/json")
        return StreamingResponse(_csv(execution, state.config.seed, index), media_type="text/csv")

    return router


def _retyped(given: str, route: str) -> str:
    return route if given == MEDIA_TYPE else given


def authenticate(state: SimState, request: Request, now: float) -> AccessGrant:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise amc_error(401, "UNAUTHORIZED", "Missing bearer access token")
    grant = state.identity.access.get(token.strip())
    if grant is None:
        withdrawn = state.identity.withdrawn.get(token.strip())
        if withdrawn is not None:
            record_of(request).access_token_serial = withdrawn.serial
        raise amc_error(401, "UNAUTHORIZED", "The access token is invalid")
    record_of(request).access_token_serial = grant.serial
    if grant.expires_at <= now:
        raise amc_error(401, "UNAUTHORIZED", "The access token has expired")
    client_id = request.headers.get("Amazon-Advertising-API-ClientId")
    if not client_id:
        raise amc_error(400, "BAD_REQUEST", "Amazon-Advertising-API-ClientId header is required")
    if client_id != grant.client_id:
        raise amc_error(401, "UNAUTHORIZED", "The access token was issued to another client")
    return grant


def _authorize(request: Request, instance: Instance, grant: AccessGrant) -> None:
    for header, expected in (
        ("Amazon-Advertising-API-AdvertiserId", instance.advertiser_id),
        ("Amazon-Advertising-API-MarketplaceId", instance.marketplace_id),
    ):
        value = request.headers.get(header)
        if not value:
            raise amc_error(400, "BAD_REQUEST", f"{header} header is required")
        if value != expected:
            raise amc_error(403, "FORBIDDEN", f"{header} has no access to this instance")
    if instance.allowed_users is not None and grant.user_id not in instance.allowed_users:
        # errors.md: "401 - Not authorized to access scope".
        raise amc_error(401, "UNAUTHORIZED", "Not authorized to access scope")


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequestError(f"{name} must be true or false")


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if value.isdigit() and 1 <= int(value) <= 100:
        return int(value)
    raise BadRequestError("limit must be a number from 1 to 100")


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_page_token(token: str | None) -> int:
    if token is None:
        return 0
    try:
        prefix, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix == "offset" and offset.isdigit():
            return int(offset)
    except ValueError:
        pass
    raise BadRequestError("nextToken is not valid")


# --- pre-signed result URLs (S3's query-string authentication, simplified) ---------------


def _result_file(index: int) -> str:
    return f"part-{index:05d}.csv"


def _file_index(file_path: str, files: int) -> int | None:
    for index in range(files):
        if file_path == _result_file(index):
            return index
    return None


def _signature(execution: Execution, file_path: str, amz_date: str, expires: str) -> str:
    message = f"{execution.execution_id}/{file_path}/{amz_date}/{expires}".encode()
    return hmac.new(execution.signature.encode(), message, hashlib.sha256).hexdigest()


def _presign(execution: Execution, file_path: str, signed_at: float, ttl: float) -> str:
    amz_date = datetime.fromtimestamp(signed_at, UTC).strftime(_AMZ_DATE)
    expires = str(int(ttl)) if ttl >= 1 else f"{ttl:g}"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": _signature(execution, file_path, amz_date, expires),
    }
    return f"/results/{execution.execution_id}/{file_path}?{urlencode(query)}"


def _signed(execution: Execution, file_path: str, query: Any) -> bool:
    given = query.get("X-Amz-Signature", "")
    amz_date, expires = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
    return hmac.compare_digest(given, _signature(execution, file_path, amz_date, expires))


def _expired(query: Any) -> bool:
    try:
        signed = datetime.strptime(query["X-Amz-Date"], _AMZ_DATE).replace(tzinfo=UTC)
        ttl = float(query["X-Amz-Expires"])
    except (KeyError, ValueError):
        return True
    return datetime.now(UTC) > signed + timedelta(seconds=ttl)


def _s3_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def _metadata(execution: Execution) -> bytes:
    """(not documented: AMC's metadata files' content is not published; this one describes
    the execution.)"""
    return json.dumps(execution_json(execution), indent=2).encode()


async def _csv(execution: Execution, seed: int, index: int) -> AsyncIterator[bytes]:
    """Deterministic rows: the same seed and execution id give the same bytes. With several
    files, row r lands in file r mod files; each file has the header."""
    rng = random.Random(f"{seed}:{execution.execution_id}")
    first_day = date(2024, 1, 1)
    if execution.window.start is not None:
        first_day = datetime.strptime(execution.window.start, "%Y-%m-%dT%H:%M:%S").date()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row_id", "workflow_id", "event_date", "impressions", "clicks", "purchases"])
    for row in range(execution.rows):
        impressions = rng.randint(100, 100_000)
        clicks = rng.randint(0, impressions // 50)
        purchases = rng.randint(0, clicks)
        if row % execution.files != index:
            continue
        day = first_day + timedelta(days=row % 7)
        writer.writerow(
            [row, execution.workflow_id, day.isoformat(), impressions, clicks, purchases]
        )
        if (row + 1) % _CSV_BATCH_ROWS == 0:
            yield _drain(buffer)
    if buffer.tell():
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return chunk
