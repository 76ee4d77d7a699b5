"""The AMC reporting API's workflow-execution routes and the pre-signed result downloads."""

from __future__ import annotations

import base64
import csv
import io
import random
import secrets
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from amclocal.simulator.config import RouteKind
from amclocal.simulator.executions import Execution, Instance, Status
from amclocal.simulator.gate import Reject, inject_faults, record_of
from amclocal.simulator.identity import AccessGrant
from amclocal.simulator.state import SimState
from amclocal.simulator.throttle import retry_after_header
from amclocal.simulator.wire import (
    BadRequestError,
    execution_json,
    parse_create,
    parse_creation_time,
)

BASE = "/amc/reporting/{instance_id}/workflowExecutions"
RESULTS = "/results/{execution_id}/{file_name}"
_RESULT_FILE = "part-00000.csv"
_CSV_BATCH_ROWS = 1000


def _amc_error(status: int, code: str, message: str) -> Reject:
    return Reject(status, {"code": code, "message": message})


def amc_router(state: SimState) -> APIRouter:
    router = APIRouter()

    async def admit(request: Request, kind: RouteKind, instance_id: str) -> Instance:
        """Faults, then 401, 404, 429 and 403 in that order, as AMC's front door does."""
        record = record_of(request)
        record.kind = kind
        record.instance_id = instance_id
        await inject_faults(state, kind)
        now = state.now()
        grant = _authenticate(state, request, now)
        instance = state.amc.instances.get(instance_id)
        if instance is None:
            raise _amc_error(404, "NOT_FOUND", f"AMC instance {instance_id} was not found")
        wait = state.limiter.admit(instance_id, now, state.config.rate_limit_per_second)
        if wait is not None:
            raise Reject(
                429,
                {"code": "TOO_MANY_REQUESTS", "message": "Rate exceeded"},
                {"Retry-After": retry_after_header(wait)},
            )
        _authorize(request, instance, grant)
        instance.advance(now, state.config.max_running)
        return instance

    def execution_of(request: Request, instance: Instance, execution_id: str) -> Execution:
        record_of(request).execution_id = execution_id
        execution = instance.executions.get(execution_id)
        if execution is None:
            raise _amc_error(404, "NOT_FOUND", f"Workflow execution {execution_id} was not found")
        return execution

    @router.post(BASE)
    async def create(request: Request, instance_id: str) -> JSONResponse:
        instance = await admit(request, RouteKind.CREATE, instance_id)
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = record_of(request)
        if isinstance(body, dict):
            record.workflow_id = _text_or_none(body.get("workflowId"))
            record.time_window_type = _text_or_none(body.get("timeWindowType"))
            record.time_window_start = _text_or_none(body.get("timeWindowStart"))
            record.time_window_end = _text_or_none(body.get("timeWindowEnd"))
        try:
            wanted = parse_create(body)
        except BadRequestError as error:
            raise _amc_error(400, "BAD_REQUEST", str(error)) from None
        now = state.now()
        execution = state.amc.create(
            instance,
            wanted.workflow_id,
            wanted.window,
            wanted.output_format,
            wanted.parameters,
            now=now,
            wall=time.time(),
            config=state.config,
            rng=state.rng,
        )
        instance.advance(now, state.config.max_running)
        record.execution_id = execution.execution_id
        return JSONResponse(execution_json(execution, now))

    @router.get(BASE)
    async def list_executions(request: Request, instance_id: str) -> JSONResponse:
        instance = await admit(request, RouteKind.LIST, instance_id)
        query = request.query_params
        try:
            low = parse_creation_time(query.get("minCreationTime"), "minCreationTime")
            high = parse_creation_time(query.get("maxCreationTime"), "maxCreationTime")
            offset = _decode_page_token(query.get("nextToken"))
        except BadRequestError as error:
            raise _amc_error(400, "BAD_REQUEST", str(error)) from None
        # Creation times travel with millisecond precision: compare at that precision.
        matching = [
            e
            for e in instance.executions.values()
            if (low is None or round(e.created_wall, 3) >= round(low, 3))
            and (high is None or round(e.created_wall, 3) <= round(high, 3))
        ]
        page_size = state.config.page_size
        now = state.now()
        answer: dict[str, Any] = {
            "executions": [execution_json(e, now) for e in matching[offset : offset + page_size]]
        }
        if offset + page_size < len(matching):
            answer["nextToken"] = _encode_page_token(offset + page_size)
        return JSONResponse(answer)

    @router.get(BASE + "/{execution_id}")
    async def get(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        instance = await admit(request, RouteKind.GET, instance_id)
        execution = execution_of(request, instance, execution_id)
        return JSONResponse(execution_json(execution, state.now()))

    @router.delete(BASE + "/{execution_id}")
    async def cancel(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        instance = await admit(request, RouteKind.CANCEL, instance_id)
        execution = execution_of(request, instance, execution_id)
        if execution.status not in (Status.PENDING, Status.RUNNING):
            raise _amc_error(
                400, "BAD_REQUEST", f"Cannot cancel an execution that is {execution.status.value}"
            )
        now = state.now()
        instance.cancel(execution, now)
        instance.advance(now, state.config.max_running)
        return JSONResponse(execution_json(execution, now))

    @router.get(BASE + "/{execution_id}/downloadUrls")
    async def download_urls(request: Request, instance_id: str, execution_id: str) -> JSONResponse:
        instance = await admit(request, RouteKind.DOWNLOAD_URLS, instance_id)
        execution = execution_of(request, instance, execution_id)
        if execution.status is not Status.SUCCEEDED:
            raise _amc_error(
                400,
                "BAD_REQUEST",
                f"Execution is {execution.status.value}; only SUCCEEDED executions have results",
            )
        path = RESULTS.format(execution_id=execution.execution_id, file_name=_RESULT_FILE)
        url = f"{str(request.base_url).rstrip('/')}{path}?X-Amz-Signature={execution.signature}"
        return JSONResponse({"downloadUrls": [url]})

    @router.get(RESULTS)
    async def results(request: Request, execution_id: str, file_name: str) -> Response:
        record = record_of(request)
        record.kind = RouteKind.RESULTS
        record.execution_id = execution_id
        await inject_faults(state, RouteKind.RESULTS)
        execution = state.amc.find(execution_id)
        if execution is not None:
            record.instance_id = execution.instance_id
        if execution is None or file_name != _RESULT_FILE:
            raise _amc_error(404, "NoSuchKey", "The specified key does not exist.")
        signature = request.query_params.get("X-Amz-Signature", "")
        if not secrets.compare_digest(signature, execution.signature):
            raise _amc_error(403, "SignatureDoesNotMatch", "The signature does not match.")
        if execution.results_expired:
            raise _amc_error(410, "Gone", "The result has expired.")
        return StreamingResponse(
            _csv(execution, state.config.seed), media_type="text/csv; charset=utf-8"
        )

    return router


def _authenticate(state: SimState, request: Request, now: float) -> AccessGrant:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _amc_error(401, "UNAUTHORIZED", "Missing bearer access token")
    grant = state.identity.access.get(token.strip())
    if grant is None:
        raise _amc_error(401, "UNAUTHORIZED", "The access token is invalid")
    if grant.expires_at <= now:
        raise _amc_error(401, "UNAUTHORIZED", "The access token has expired")
    client_id = request.headers.get("Amazon-Advertising-API-ClientId")
    if not client_id:
        raise _amc_error(400, "BAD_REQUEST", "Amazon-Advertising-API-ClientId header is required")
    if client_id != grant.client_id:
        raise _amc_error(401, "UNAUTHORIZED", "The access token was issued to another client")
    return grant


def _authorize(request: Request, instance: Instance, grant: AccessGrant) -> None:
    for header, expected in (
        ("Amazon-Advertising-API-AdvertiserId", instance.advertiser_id),
        ("Amazon-Advertising-API-MarketplaceId", instance.marketplace_id),
    ):
        value = request.headers.get(header)
        if not value:
            raise _amc_error(400, "BAD_REQUEST", f"{header} header is required")
        if value != expected:
            raise _amc_error(403, "FORBIDDEN", f"{header} has no access to this instance")
    if instance.allowed_users is not None and grant.user_id not in instance.allowed_users:
        raise _amc_error(403, "FORBIDDEN", "The user has no access to this instance")


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


async def _csv(execution: Execution, seed: int) -> AsyncIterator[bytes]:
    """Deterministic rows: the same seed and execution id give the same bytes."""
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
        day = first_day + timedelta(days=row % 7)
        writer.writerow(
            [
                row,
                execution.workflow_id,
                day.isoformat(),
                impressions,
                clicks,
                rng.randint(0, clicks),
            ]
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
