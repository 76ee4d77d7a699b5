"""Workflows: an instance's saved AMC workflows, and one workflow's versions pushed through
the poller (hash, author, time, SQL) with the executions that ran each version.

The poller asks AMC for these on every call (there is no copy of AMC's list to page
through), so AMC's refusals (no managing user, no token yet) are shown on the page rather
than as an error page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.backends import ApiProblem
from services.console.present import pick_version, short_hash
from services.console.web import ConsoleDep, PrincipalDep, render

router = APIRouter(prefix="/workflows")


@router.get("", response_class=HTMLResponse)
async def choose_instance(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    items = await console.backends.instances()
    return render(request, console, "workflows_pick.html", principal, items=items)


@router.get("/{instance_id}", response_class=HTMLResponse)
async def list_workflows(
    instance_id: str, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    items: list[dict[str, Any]] = []
    problem = None
    try:
        items = await console.backends.workflows(instance_id)
    except ApiProblem as refused:
        problem = refused
    return render(
        request,
        console,
        "workflows.html",
        principal,
        instance_id=instance_id,
        items=items,
        problem=problem,
        short_hash=short_hash,
        status_code=problem.status if problem and problem.status == 404 else 200,
    )


@router.get("/{instance_id}/{workflow_id}", response_class=HTMLResponse)
async def show_workflow(
    instance_id: str,
    workflow_id: str,
    request: Request,
    console: ConsoleDep,
    principal: PrincipalDep,
) -> HTMLResponse:
    w = await console.backends.workflow(instance_id, workflow_id)
    wanted = request.query_params.get("version")
    chosen = pick_version(w["versions"], wanted)
    runs = await console.backends.get(
        "poller",
        "/executions",
        instance_id=instance_id,
        workflow_id=workflow_id,
        limit=console.settings.page_size,
    )
    return render(
        request,
        console,
        "workflow.html",
        principal,
        status_code=404 if wanted and chosen is None else 200,
        w=w,
        chosen=chosen,
        wanted=wanted,
        runs=runs["executions"],
        short_hash=short_hash,
    )
