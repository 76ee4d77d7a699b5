"""Collections: list with progress, one collection's week grid, create, and its actions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.auth import Principal
from services.console.backends import ApiProblem
from services.console.web import (
    CSRF_CHECKED,
    Console,
    ConsoleDep,
    FormDep,
    Listing,
    PrincipalDep,
    act,
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
    created, problem = await act(
        console,
        principal,
        "collection.create",
        body.get("workflow_id") or "(new)",
        "collector",
        "/collections",
        body,
    )
    if problem is not None:
        return render_form(request, console, NEW_FORM, principal, form, problem)
    return see_other(f"/collections/{created['id']}", "created")


async def _collection(console: Console, collection_id: UUID) -> tuple[Any, Any]:
    """A collection and its weeks, as the collector shows them."""
    c = await console.backends.get("collector", f"/collections/{collection_id}")
    weeks = await console.backends.get("collector", f"/collections/{collection_id}/weeks")
    return c, weeks


async def _page(
    request: Request,
    console: Console,
    principal: Principal,
    collection_id: UUID,
    problem: ApiProblem | None = None,
) -> HTMLResponse:
    """The collection's page; with the collector's refusal of an action, shown beside it."""
    c, weeks = await _collection(console, collection_id)
    status_code = problem.status if problem is not None else 200
    return render(
        request,
        console,
        "collection.html",
        principal,
        status_code=status_code,
        c=c,
        weeks=weeks,
        problem=problem,
    )


@router.get("/{collection_id}", response_class=HTMLResponse)
async def show_collection(
    collection_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    return await _page(request, console, principal, collection_id)


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
        return await _page(request, console, principal, collection_id, problem)
    return see_other(f"/collections/{collection_id}", ACTIONS[action])
