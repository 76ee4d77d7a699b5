"""Collections: list with progress, one collection's week grid, create, and its actions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.web import (
    CSRF_CHECKED,
    Console,
    ConsoleDep,
    FormDep,
    Listing,
    PrincipalDep,
    act_new,
    act_on,
    render,
    render_form,
    see_other,
)
from shared.run_target import TARGET_TEXT_FIELDS

router = APIRouter(prefix="/collections")

NEW_FORM = "collection_new.html"
ACTIONS = {"retry": "retried", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}
FORM_FIELDS = (*TARGET_TEXT_FIELDS, "start_date", "end_date", "time_zone", "max_weeks_in_flight")

# A run names a workflow or carries SQL, and may leave the account ids to the instance
# registry: a blank box is a field not given, which the service tells from an empty value.
OPTIONAL_RUN_FIELDS = ("advertiser_id", "marketplace_id", "workflow_id", "sql_query")


def drop_blank(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if not body.get(name):
            body.pop(name, None)


@router.get("", response_class=HTMLResponse)
async def list_collections(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    listing = Listing.of(request, console, "status")
    items = await listing.fetch(console, "collector", "/collections")
    return listing.render(request, console, "collections.html", principal, items)


@router.get("/new", response_class=HTMLResponse)
async def new_collection(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    defaults = {"time_zone": "UTC", "max_weeks_in_flight": "2"}
    return render_form(request, console, NEW_FORM, principal, defaults)


@router.post("/new", response_class=HTMLResponse)
async def create_collection(
    request: Request, console: ConsoleDep, principal: PrincipalDep, form: FormDep
) -> Response:
    body: dict[str, Any] = {k: form.get(k, "").strip() for k in FORM_FIELDS}
    body["max_weeks_in_flight"] = body["max_weeks_in_flight"] or None
    drop_blank(body, OPTIONAL_RUN_FIELDS)
    label = body.get("workflow_id") or "(new)"
    created, problem = await act_new(console, principal, "collector", "collection", label, body)
    if problem is not None:
        return render_form(request, console, NEW_FORM, principal, form, problem)
    return see_other(f"/collections/{created['id']}", "created")


async def _collection(console: Console, collection_id: UUID) -> tuple[Any, Any]:
    """A collection and its weeks, as the collector shows them."""
    c = await console.backends.get("collector", f"/collections/{collection_id}")
    weeks = await console.backends.get("collector", f"/collections/{collection_id}/weeks")
    return c, weeks


@router.get("/{collection_id}", response_class=HTMLResponse)
async def show_collection(
    collection_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    c, weeks = await _collection(console, collection_id)
    return render(request, console, "collection.html", principal, c=c, weeks=weeks, problem=None)


@router.get("/{collection_id}/grid", response_class=HTMLResponse)
async def grid_fragment(
    collection_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    """Progress and week grid alone: swapped in live as weeks move."""
    c, weeks = await _collection(console, collection_id)
    return render(request, console, "_grid.html", principal, c=c, weeks=weeks)


@router.post("/{collection_id}/{action}", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
async def collection_action(
    collection_id: UUID, action: str, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> Response:
    if action not in ACTIONS:
        return Response(status_code=404)
    problem = await act_on(console, principal, "collector", "collection", collection_id, action)
    if problem is not None:
        c, weeks = await _collection(console, collection_id)
        return render(
            request,
            console,
            "collection.html",
            principal,
            status_code=problem.status,
            c=c,
            weeks=weeks,
            problem=problem,
        )
    return see_other(f"/collections/{collection_id}", ACTIONS[action])
