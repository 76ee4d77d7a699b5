"""Executions: filtered list, one execution (AMC ids, error, result, trace link), cancel."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import (
    ConsoleDep,
    Pager,
    PrincipalDep,
    act,
    filters,
    form_of,
    offset_of,
    render,
    see_other,
)

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


@router.get("", response_class=HTMLResponse)
async def list_executions(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    query = filters(
        request, "status", "instance_id", "workflow_id", "user_id", "origin_kind", "origin_id"
    )
    offset, limit = offset_of(request), console.settings.page_size
    page = await console.backends.get("poller", "/executions", **query, limit=limit, offset=offset)
    items = page["executions"]
    pager = Pager(offset, limit, len(items), None, query)
    return render(
        request,
        console,
        "executions.html",
        principal,
        items=items,
        query=query,
        pager=pager,
        statuses=STATUSES,
        origins=ORIGINS,
    )


def _trace_url(console: ConsoleDep, execution: dict[str, Any]) -> str | None:
    template = console.settings.trace_url_template
    return template.replace("{execution_id}", execution["execution_id"]) if template else None


async def _page(
    request: Request,
    console: ConsoleDep,
    principal: PrincipalDep,
    execution_id: UUID,
    **extra: Any,
) -> HTMLResponse:
    e = await console.backends.get("poller", f"/executions/{execution_id}")
    return render(
        request,
        console,
        "execution.html",
        principal,
        e=e,
        trace_url=_trace_url(console, e),
        **extra,
    )


@router.get("/{execution_id}", response_class=HTMLResponse)
async def show_execution(
    execution_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    return await _page(request, console, principal, execution_id, problem=None)


@router.post("/{execution_id}/cancel", response_class=HTMLResponse)
async def cancel_execution(
    execution_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> Response:
    await form_of(request, principal)
    _, problem = await act(
        console,
        principal,
        "execution.cancel",
        str(execution_id),
        "poller",
        f"/executions/{execution_id}/cancel",
    )
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
