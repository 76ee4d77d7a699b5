"""The audit log: who changed what through the console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console import store
from services.console.web import ConsoleDep, Pager, PrincipalDep, offset_of, render

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(request: Request, console: ConsoleDep, principal: PrincipalDep) -> HTMLResponse:
    offset, limit = offset_of(request), console.settings.page_size
    async with console.runtime.pool.acquire() as conn:
        entries = await store.audit_page(conn, limit=limit, offset=offset)
    pager = Pager(offset, limit, len(entries), None, {})
    return render(request, console, "audit.html", principal, entries=entries, pager=pager)
