"""Sign in (API key, or a trusted SSO header) and sign out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import auth
from services.console.web import ConsoleDep, PrincipalDep, form_of, render, see_other

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
    return render(request, console, "signin.html", None, next=target, error=None)


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, console: ConsoleDep) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    target = _safe_next(form.get("next"))
    name = form.get("name", "").strip()[:100]
    if not name or not auth.api_key_matches(console.settings, form.get("api_key", "")):
        error = "Give your name and the services' API key." if not name else "Wrong API key."
        return render(
            request, console, "signin.html", None, status_code=401, next=target, error=error
        )
    response = RedirectResponse(target, status_code=303)
    await auth.start_session(console.runtime, console.settings, response, name, "api_key")
    return response


@router.post("/signout")
async def signout(request: Request, console: ConsoleDep, principal: PrincipalDep) -> Response:
    await form_of(request, principal)
    await auth.end_session(console.runtime, console.settings, request)
    response = see_other("/signin", "signed-out")
    response.delete_cookie(auth.COOKIE, path="/")
    return response
