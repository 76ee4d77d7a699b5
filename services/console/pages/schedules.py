"""Schedules: list, one schedule with its runs, the create form, pause/resume/trigger."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import charts, history
from services.console.auth import Principal
from services.console.backends import ApiProblem
from services.console.pages.collections import OPTIONAL_RUN_FIELDS, drop_blank
from services.console.web import (
    CSRF_CHECKED,
    Console,
    ConsoleDep,
    FormDep,
    Listing,
    Pager,
    PrincipalDep,
    act_new,
    act_on,
    audit,
    offset_of,
    render,
    render_form,
    see_other,
)

router = APIRouter(prefix="/schedules")

NEW_FORM = "schedule_new.html"
WINDOWS = ("MOST_RECENT_DAY", "MOST_RECENT_WEEK", "CURRENT_MONTH", "PREVIOUS_MONTH")
FORM_FIELDS = (
    "name",
    "cron",
    "timezone",
    "workflow_id",
    "sql_query",
    "instance_id",
    "user_id",
    "advertiser_id",
    "marketplace_id",
    "window",
    "parameters",
)


@router.get("", response_class=HTMLResponse)
async def list_schedules(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    listing = Listing.of(request, console, "state", "user_id", "instance_id")
    page = await listing.fetch(console, "scheduler", "/schedules")
    return listing.render(
        request, console, "schedules.html", principal, page["items"], page["total"]
    )


@router.get("/new", response_class=HTMLResponse)
async def new_schedule(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    defaults = {"timezone": "UTC", "window": WINDOWS[0]}
    return render_form(request, console, NEW_FORM, principal, defaults, windows=WINDOWS)


def _schedule_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {k: form.get(k, "").strip() for k in FORM_FIELDS}
    body["name"] = body["name"] or None
    drop_blank(body, OPTIONAL_RUN_FIELDS)
    body["window"] = {"type": body["window"] or WINDOWS[0]}
    raw = body.pop("parameters")
    if raw:
        try:
            body["parameters"] = json.loads(raw)
        except ValueError:
            # Sent as given: the scheduler names the field in its refusal.
            body["parameters"] = raw
    return body


@router.post("/new", response_class=HTMLResponse)
async def create_schedule(
    request: Request, console: ConsoleDep, principal: PrincipalDep, form: FormDep
) -> Response:
    label, body = form.get("name") or "(new)", _schedule_body(form)
    created, problem = await act_new(console, principal, "scheduler", "schedule", label, body)
    if problem is not None:
        return render_form(request, console, NEW_FORM, principal, form, problem, windows=WINDOWS)
    return see_other(f"/schedules/{created['id']}", "created")


async def _runs(console: Console, schedule_id: UUID, offset: int) -> tuple[Any, Pager]:
    """A page of the schedule's runs, newest first, and its pager."""
    limit = console.settings.page_size
    path = f"/schedules/{schedule_id}/runs"
    runs = await console.backends.get("scheduler", path, limit=limit, offset=offset)
    return runs, Pager(offset, limit, len(runs["items"]), runs["total"], {})


async def _page(
    request: Request,
    console: Console,
    principal: Principal,
    schedule_id: UUID,
    offset: int,
    problem: ApiProblem | None = None,
) -> HTMLResponse:
    """The schedule's page; with the scheduler's refusal of an action, shown beside it."""
    schedule = await console.backends.get("scheduler", f"/schedules/{schedule_id}")
    runs, pager = await _runs(console, schedule_id, offset)
    return render(
        request,
        console,
        "schedule.html",
        principal,
        status_code=problem.status if problem is not None else 200,
        s=schedule,
        runs=runs,
        pager=pager,
        outcomes=charts.outcome_strip(history.strip(runs["items"])),
        problem=problem,
    )


@router.get("/{schedule_id}", response_class=HTMLResponse)
async def show_schedule(
    schedule_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    return await _page(request, console, principal, schedule_id, offset_of(request))


@router.get("/{schedule_id}/runs", response_class=HTMLResponse)
async def runs_fragment(
    schedule_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    """The run table alone: the schedule page swaps it in when the live feed moves."""
    runs, pager = await _runs(console, schedule_id, offset_of(request))
    return render(request, console, "_runs.html", principal, runs=runs, pager=pager)


@router.post("/{schedule_id}/{action}", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
async def schedule_action(
    schedule_id: UUID, action: str, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> Response:
    if action not in ("pause", "resume", "trigger"):
        await audit(
            console,
            principal,
            f"schedule.{action}",
            str(schedule_id),
            ApiProblem("console", 404, "unknown action"),
        )
        return Response(status_code=404)
    problem = await act_on(console, principal, "scheduler", "schedule", schedule_id, action)
    if problem is not None:
        return await _page(request, console, principal, schedule_id, 0, problem)
    done = {"pause": "paused", "resume": "resumed", "trigger": "triggered"}[action]
    return see_other(f"/schedules/{schedule_id}", done)
