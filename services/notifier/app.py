"""Notifier wiring: settings -> runtime (runtime.py) -> the management API's routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifier.api import router
from services.notifier.runtime import NotifierRuntime, build_runtime, wired_runtime
from services.notifier.settings import NotifierSettings
from shared.http import create_app as create_http_app
from shared.service import serve

DESCRIPTION = """\
Turns events that matter to people (runs that ended, users who must re-authorize, paused
schedules, finished collections, dead letters) into messages through apprise channels
(email, Slack, Microsoft Teams, webhooks, ...), by rules. Rule URLs are secrets: stored
encrypted, shown redacted.
"""


def create_app(settings: NotifierSettings) -> FastAPI:
    return app_for(build_runtime(settings))


def app_for(runtime: NotifierRuntime) -> FastAPI:
    """The HTTP app of a runtime built already (tests hold both)."""
    app = create_http_app(runtime, routers=[router], title="amc-notifier", description=DESCRIPTION)
    wired_runtime.bind(app, runtime)
    return app


def main() -> None:
    serve(NotifierSettings, create_app)
