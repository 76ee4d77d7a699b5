"""Notification rules: the notifier's rules with their channels, URLs redacted to scheme
and host (the notifier already answers them so; `redact_url` makes sure of it)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.present import filter_text, redact_url
from services.console.web import ConsoleDep, PrincipalDep, render

router = APIRouter(prefix="/rules")


def _safe(rule: dict[str, Any]) -> dict[str, Any]:
    return {**rule, "url": redact_url(str(rule.get("url", "")))}


@router.get("", response_class=HTMLResponse)
async def list_rules(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    items = [_safe(r) for r in await console.backends.rules()]
    return render(request, console, "rules.html", principal, items=items, filter_text=filter_text)


@router.get("/{rule_id}", response_class=HTMLResponse)
async def show_rule(
    rule_id: UUID, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    r = _safe(await console.backends.rule(str(rule_id)))
    deliveries = await console.backends.get(
        "notifier",
        "/notifications/deliveries",
        rule_id=str(rule_id),
        limit=console.settings.page_size,
    )
    return render(
        request,
        console,
        "rule.html",
        principal,
        r=r,
        rows=filter_text(r.get("filter") or {}),
        deliveries=deliveries,
    )
