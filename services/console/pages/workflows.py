"""Workflows: an instance's saved AMC workflows, and one workflow's versions pushed through
the poller (hash, author, time, SQL) with the executions that ran each version, and AMC's
verdict on a version from a dry run (validate).

The poller asks AMC for these on every call (there is no copy of AMC's list to page
through), so AMC's refusals (no managing user, no token yet) are shown on the page rather
than as an error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.console import charts, history
from services.console.auth import Principal
from services.console.backends import ApiProblem
from services.console.present import pick_version, short_hash
from services.console.web import Console, ConsoleDep, FormDep, PrincipalDep, act, render

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


@dataclass(frozen=True)
class WorkflowAt:
    """The workflow a page is about, from its path."""

    instance_id: str
    workflow_id: str


WorkflowDep = Annotated[WorkflowAt, Depends()]


@router.get("/{instance_id}/{workflow_id}", response_class=HTMLResponse)
async def show_workflow(
    at: WorkflowDep, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    return await _page(request, console, principal, at)


@router.post("/{instance_id}/{workflow_id}/validate", response_class=HTMLResponse)
async def validate_workflow(
    at: WorkflowDep, request: Request, console: ConsoleDep, principal: PrincipalDep, form: FormDep
) -> HTMLResponse:
    """AMC's verdict on the version shown (or AMC's own definition) from a dry run: nothing
    runs and nothing counts towards the instance's daily cap (the poller's validate)."""
    w = await console.backends.workflow(at.instance_id, at.workflow_id)
    chosen = pick_version(w["versions"], form.get("version") or None)
    if chosen is not None:
        sql, parameters, settings = (
            chosen["sql_query"],
            chosen["input_parameters"],
            chosen.get("settings", {}),
        )
    elif w["at_amc"] is not None:
        held = dict(w["at_amc"])
        sql, parameters = held.pop("sqlQuery"), held.pop("inputParameters", [])
        held.pop("workflowId", None)
        settings = held
    else:
        return await _page(request, console, principal, at)
    body = {"sql_query": sql, "input_parameters": parameters, "settings": settings}
    verdict, problem = await act(
        console,
        principal,
        "workflow.validate",
        f"{at.instance_id}/{at.workflow_id}",
        "poller",
        # Quoted: the id is the operator's text and must not add path segments.
        f"/workflows/{quote(at.instance_id, safe='')}/validate",
        body,
    )
    return await _page(
        request,
        console,
        principal,
        at,
        verdict=verdict,
        problem=problem,
        version=form.get("version") or None,
    )


async def _page(
    request: Request,
    console: Console,
    principal: Principal,
    at: WorkflowAt,
    verdict: dict[str, Any] | None = None,
    problem: ApiProblem | None = None,
    version: str | None = None,
) -> HTMLResponse:
    w = await console.backends.workflow(at.instance_id, at.workflow_id)
    wanted = version or request.query_params.get("version")
    chosen = pick_version(w["versions"], wanted)
    runs = await console.backends.get(
        "poller",
        "/executions",
        instance_id=at.instance_id,
        workflow_id=at.workflow_id,
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
        durations=charts.run_durations(history.durations(runs["executions"])),
        short_hash=short_hash,
        verdict=verdict,
        problem=problem,
    )
