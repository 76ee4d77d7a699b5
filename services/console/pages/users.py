"""Users: token state per user, and "connect an Amazon account" (Login with Amazon's
authorization-code flow, completed by the token service's /oauth/exchange).

The browser goes to LWA with a one-time `state`; LWA sends it back to /oauth/callback with a
`code`. That redirect is cross-site, so the SameSite=Strict session cookie is not sent: the
state (random, stored hashed with who asked and for which user, valid 10 minutes, usable
once) is what authorizes the callback. The code goes from the callback straight to the token
service and is never logged or shown.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import auth, store
from services.console.backends import ApiProblem
from services.console.web import (
    Console,
    ConsoleDep,
    FormDep,
    PrincipalDep,
    audit,
    filters,
    render,
)
from shared.clients.lwa import LwaRegion

router = APIRouter()
log = logging.getLogger(__name__)
STATE_TTL = timedelta(minutes=10)


def redirect_uri(console: ConsoleDep) -> str:
    return console.settings.public_url.rstrip("/") + "/oauth/callback"


@router.get("/users", response_class=HTMLResponse)
async def list_users(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    query = filters(request, "status", "after")
    page = await console.backends.get("token", "/tokens", **query, limit=console.settings.page_size)
    next_link = None
    if page["next_after"]:
        next_link = "?" + urlencode({**query, "after": page["next_after"]})
    return render(
        request,
        console,
        "users.html",
        principal,
        page=page,
        query=query,
        next_link=next_link,
        error=None,
    )


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def show_user(
    user_id: str, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    token = await console.backends.get("token", f"/tokens/{user_id}")
    return render(request, console, "user.html", principal, t=token)


@router.post("/users/connect")
async def connect(
    request: Request, console: ConsoleDep, principal: PrincipalDep, form: FormDep
) -> Response:
    user_id = form.get("user_id", "").strip()
    region_name = form.get("region", LwaRegion.NA.value)
    client_id = console.settings.lwa_client_id
    region = LwaRegion(region_name) if region_name in LwaRegion.__members__ else None
    if not user_id or not client_id or region is None:
        page = await console.backends.get("token", "/tokens", limit=console.settings.page_size)
        if not client_id:
            error = "Set CONSOLE_LWA_CLIENT_ID (or LWA_CLIENT_ID) to connect accounts."
        elif region is None:
            error = f"Unknown region {region_name[:20]!r}: choose NA, EU or FE."
        else:
            error = "Give the user id to connect."
        return render(
            request,
            console,
            "users.html",
            principal,
            status_code=422,
            page=page,
            query={},
            next_link=None,
            error=error,
        )
    state = secrets.token_urlsafe(32)
    async with console.runtime.pool.acquire() as conn:
        await store.add_oauth_state(
            conn, auth.hash_id(state), principal.name, user_id, STATE_TTL, region
        )
    await audit(console, principal, "user.connect-started", user_id)
    query = urlencode(
        {
            "client_id": client_id,
            "scope": console.settings.lwa_scope,
            "response_type": "code",
            "redirect_uri": redirect_uri(console),
            "state": state,
        }
    )
    # Login with Amazon has an authorization URL per region (create-authorization-grant.md).
    authorize = console.settings.lwa_authorize_urls[region]
    return RedirectResponse(f"{authorize}?{query}", status_code=303)


def _connected(
    request: Request, console: Console, user_id: str | None, message: str, status_code: int = 200
) -> HTMLResponse:
    """The page the LWA callback ends on (no session: it is a cross-site redirect)."""
    return render(
        request, console, "connected.html", None, status_code, user_id=user_id, message=message
    )


@router.get("/oauth/callback", response_class=HTMLResponse)
async def callback(
    request: Request,
    console: ConsoleDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    async with console.runtime.pool.acquire() as conn:
        pending = await store.take_oauth_state(conn, auth.hash_id(state)) if state else None
    if pending is None:
        return _connected(
            request,
            console,
            None,
            "This sign-in link is unknown, used or expired: start again from Users.",
            400,
        )
    principal_name, user_id, region = pending
    who = auth.Principal(principal_name, "oauth", "")
    if error or not code:
        # LWA's error codes (access_denied, ...) are fixed words, safe to show.
        problem = ApiProblem("lwa", 400, error[:50] or "no code returned")
        await audit(console, who, "user.connect", user_id, problem)
        return _connected(
            request, console, user_id, f"Amazon did not authorize: {problem.message}.", 400
        )
    try:
        await console.backends.post(
            "token",
            "/oauth/exchange",
            {
                "user_id": user_id,
                "code": code,
                "redirect_uri": redirect_uri(console),
                "region": region.value,
            },
        )
    except ApiProblem as problem:
        # The token service's message may quote LWA; keep only the status for the page.
        log.warning("code exchange for user %s refused: %s", user_id, problem.status)
        await audit(
            console, who, "user.connect", user_id, ApiProblem("token", problem.status, "refused")
        )
        return _connected(
            request,
            console,
            user_id,
            f"The token service could not exchange the code (HTTP {problem.status}).",
            502,
        )
    await audit(console, who, "user.connect", user_id)
    return _connected(
        request, console, user_id, f"User {user_id} is connected: tokens are stored and refreshed."
    )
