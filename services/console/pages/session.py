"""Sign in (API key, or a trusted SSO header) and sign out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import auth
from services.console.web import CSRF_CHECKED, ConsoleDep, render, see_other

router = APIRouter()


def _safe_next(value: str | None) -> str:
    # Only paths of this site: an open redirect would make the sign-in page a phishing aid.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request, console: ConsoleDep, next_: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    target = _safe_next(next_)
    if await auth.current(console.runtime, console.settings, request):
        return RedirectResponse(target, status_code=303)
    sso = auth.sso_user(console.settings, request)
    if sso is not None:
        response = RedirectResponse(target, status_code=303)
        await auth.start_session(console.runtime, console.settings, response, sso, "sso")
        return response
    return _form(request, console, target, None)


def _form(
    request: Request, console: ConsoleDep, target: str, error: str | None, status_code: int = 200
) -> Response:
    """The sign-in form with a fresh pre-session CSRF pair (cookie and hidden field)."""
    key = auth.signing_key(console.settings)
    cookie, field = auth.new_signin_token(key)
    response = render(
        request,
        console,
        "signin.html",
        None,
        status_code=status_code,
        next=target,
        error=error,
        signin_csrf=field,
    )
    auth.set_signin_cookie(console.settings, response, cookie)
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, console: ConsoleDep) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    target = _safe_next(form.get("next"))
    key = auth.signing_key(console.settings)
    if not auth.signin_token_ok(key, request.cookies.get(auth.SIGNIN_COOKIE), form.get("csrf")):
        # Checked before the key: a forged form learns nothing, not even if its key was right.
        error = "The sign-in form expired or did not come from this console: sign in again."
        return _form(request, console, target, error, status_code=403)
    name = form.get("name", "").strip()[:100]
    if not name or not auth.api_key_matches(console.settings, form.get("api_key", "")):
        error = "Give your name and the services' API key." if not name else "Wrong API key."
        return _form(request, console, target, error, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(auth.SIGNIN_COOKIE, path="/signin", httponly=True, samesite="strict")
    await auth.start_session(console.runtime, console.settings, response, name, "api_key")
    return response


@router.post("/signout", dependencies=[CSRF_CHECKED])
async def signout(request: Request, console: ConsoleDep) -> Response:
    await auth.end_session(console.runtime, console.settings, request)
    response = see_other("/signin", "signed-out")
    response.delete_cookie(auth.COOKIE, path="/")
    return response
