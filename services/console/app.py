"""Console wiring: settings -> runtime (runtime.py) -> pages, JSON API, static files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.console import api, auth
from services.console.backends import ApiProblem
from services.console.pages import (
    audit,
    collections,
    dead_letters,
    executions,
    overview,
    schedules,
    session,
)
from services.console.pages import instances as instance_pages
from services.console.pages import rules as rule_pages
from services.console.pages import users as users_pages
from services.console.pages import workflows as workflow_pages
from services.console.runtime import ConsoleRuntime, build_runtime
from services.console.settings import ConsoleSettings
from services.console.web import Console, make_templates, render, wired_console
from shared.http import create_app as create_http_app
from shared.service import serve

STATIC = Path(__file__).with_name("static")

DESCRIPTION = """\
The operators' web console. Reads and changes state only through the other services'
management APIs (with the API key, server-side) and follows the event topics for live pages.
"""


# No inline script or style anywhere, so the policy can forbid both; forms may only go here
# and (through the connect form's redirect) to Login with Amazon; no referrer, so an OAuth
# callback's query never leaves in a Referer header.
def security_headers_for(settings: ConsoleSettings) -> dict[str, str]:
    hosts = sorted(
        {f"{u.scheme}://{u.netloc}" for u in map(urlsplit, settings.lwa_authorize_urls.values())}
    )
    return {
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
        f"form-action 'self' {' '.join(hosts)}; base-uri 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def create_app(settings: ConsoleSettings) -> FastAPI:
    return app_for(build_runtime(settings))


def app_for(runtime: ConsoleRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    settings = runtime.console_settings
    app = create_http_app(runtime, title="amc-console", description=DESCRIPTION)
    console = Console(
        runtime,
        settings,
        runtime.backends,
        runtime.feed,
        make_templates(),
        runtime.dead_letters,
    )
    wired_console.bind(app, console)
    pages = (session, overview, schedules, collections, executions, users_pages, dead_letters)
    for module in (*pages, audit):
        app.include_router(module.router, include_in_schema=False)
    app.include_router(api.router)
    for module in (instance_pages, workflow_pages, rule_pages):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    headers = security_headers_for(settings)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(auth.SignInRequired)
    async def sign_in_first(request: Request, _: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(auth.CsrfRejected)
    async def csrf_rejected(request: Request, _: Exception) -> Response:
        return render(
            request,
            console,
            "error.html",
            None,
            status_code=403,
            message="The form's security token did not match: reload the page and try again.",
        )

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        principal = await auth.current(runtime, settings, request)
        return render(
            request,
            console,
            "error.html",
            principal,
            status_code=exc.status,
            message=str(exc),
        )

    return app


def main() -> None:
    serve(ConsoleSettings, create_app)
