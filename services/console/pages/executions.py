"""Executions: filtered list, one execution (AMC ids, error, result preview and download,
trace link), cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from services.console.backends import ApiProblem
from services.console.web import (
    CSRF_CHECKED,
    ConsoleDep,
    Listing,
    PrincipalDep,
    act_on,
    audit,
    render,
    see_other,
)
from shared.columns import numeric_columns

router = APIRouter(prefix="/executions")

STATUSES = (
    "RECEIVED",
    "WAITING_FOR_TOKEN",
    "QUEUED",
    "SUBMITTING",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMED_OUT",
)
ORIGINS = ("schedule", "collection", "external")
# Rows of a result shown on its execution's page: enough to see its shape, few enough that
# the page stays light on a phone.
PREVIEW_ROWS = 20


@router.get("", response_class=HTMLResponse)
async def list_executions(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    listing = Listing.of(
        request,
        console,
        "status",
        "instance_id",
        "workflow_id",
        "user_id",
        "origin_kind",
        "origin_id",
    )
    page = await listing.fetch(console, "poller", "/executions")
    return listing.render(
        request,
        console,
        "executions.html",
        principal,
        page["executions"],
        statuses=STATUSES,
        origins=ORIGINS,
    )


def _trace_url(console: ConsoleDep, execution: dict[str, Any]) -> str | None:
    template = console.settings.trace_url_template
    return template.replace("{execution_id}", execution["execution_id"]) if template else None


async def _preview(
    console: ConsoleDep, execution: dict[str, Any]
) -> tuple[dict[str, Any] | None, ApiProblem | None]:
    """The result's preview, or why there is none to show (expired, store unreachable)."""
    if execution["result"] is None:
        return None, None
    path = f"/executions/{execution['execution_id']}/result/preview"
    try:
        preview = await console.backends.get("poller", path, rows=PREVIEW_ROWS)
    except ApiProblem as problem:
        return None, problem
    preview["numeric"] = numeric_columns(preview["columns"], preview["rows"])
    return preview, None


async def _page(
    request: Request,
    console: ConsoleDep,
    principal: PrincipalDep,
    execution_id: UUID,
    **extra: Any,
) -> HTMLResponse:
    e = await console.backends.get("poller", f"/executions/{execution_id}")
    preview, result_problem = await _preview(console, e)
    return render(
        request,
        console,
        "execution.html",
        principal,
        e=e,
        trace_url=_trace_url(console, e),
        preview=preview,
        result_problem=result_problem,
        **extra,
    )


@router.get("/{execution_id}", response_class=HTMLResponse)
async def show_execution(
    execution_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    return await _page(request, console, principal, execution_id, problem=None)


@router.get("/{execution_id}/result")
async def download_result(
    execution_id: UUID,
    console: ConsoleDep,
    principal: PrincipalDep,
    file: Annotated[str | None, Query(min_length=1)] = None,
) -> StreamingResponse:
    """The result streamed through the console from the poller (which streams it from the
    store): the browser never sees the API key or the store."""
    upstream = await console.backends.stream(
        "poller", f"/executions/{execution_id}/result", params={"file": file}
    )
    headers = {"Content-Disposition": upstream.headers.get("Content-Disposition", "attachment")}
    if "Content-Length" in upstream.headers and "Content-Encoding" not in upstream.headers:
        headers["Content-Length"] = upstream.headers["Content-Length"]
    # Reading a result hands data out of the system: the audit log says who took what.
    target = f"{execution_id} {file or 'all files'}"
    try:
        await audit(console, principal, "execution.download", target)
    except BaseException:
        await upstream.aclose()
        raise
    return StreamingResponse(_relay(upstream), media_type="text/csv", headers=headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_bytes():
            yield chunk
    finally:
        # Also when the browser goes away mid-download: the poller's stream ends with it.
        await upstream.aclose()


@router.post("/{execution_id}/cancel", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
async def cancel_execution(
    execution_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> Response:
    problem = await act_on(console, principal, "poller", "execution", execution_id, "cancel")
    if problem is not None:
        return await _page(
            request,
            console,
            principal,
            execution_id,
            problem=problem,
            status_code=problem.status,
        )
    return see_other(f"/executions/{execution_id}", "cancelled")
