"""Token service wiring: settings -> runtime (runtime.py) -> the management API's routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.token.api import router
from services.token.runtime import TokenRuntime, build_runtime, wired_runtime
from services.token.settings import TokenSettings
from shared.http import create_app as create_http_app
from shared.service import serve

DESCRIPTION = """\
Holds the Login with Amazon client credentials and users' refresh tokens (encrypted), keeps
access tokens fresh, and answers `token.refresh_requested` events.

Every route below `/tokens` and `/oauth` requires `Authorization: Bearer <API key>`. That
includes `POST /oauth/exchange`, which the web front end's OAuth redirect handler calls from
its backend (the backend holds the key; browsers never call this service). No answer ever
contains a token.
"""


def app_for(runtime: TokenRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    app = create_http_app(runtime, routers=[router], title="amc-token", description=DESCRIPTION)
    wired_runtime.bind(app, runtime)
    return app


def create_app(settings: TokenSettings) -> FastAPI:
    return app_for(build_runtime(settings))


def main() -> None:
    serve(TokenSettings, create_app)
