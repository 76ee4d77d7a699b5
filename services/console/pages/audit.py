"""The audit log: who changed what through the console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console import store
from services.console.web import ConsoleDep, Listing, PrincipalDep

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(request: Request, console: ConsoleDep, principal: PrincipalDep) -> HTMLResponse:
    listing = Listing.of(request, console)
    async with console.runtime.pool.acquire() as conn:
        entries = await store.audit_page(conn, limit=listing.limit, offset=listing.offset)
    return listing.render(request, console, "audit.html", principal, entries)
