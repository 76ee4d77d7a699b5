"""Notifier wiring: runtime, event handlers, the sender loop and the management API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.notifier import handlers
from services.notifier.api import router
from services.notifier.metrics import NotifierMetrics
from services.notifier.sender import Sender
from services.notifier.settings import NotifierSettings
from shared.config import ServiceSettings
from shared.crypto import KeyRing
from shared.http import create_app as create_http_app
from shared.runtime import ServiceRuntime
from shared.service import serve

MIGRATIONS = Path(__file__).with_name("migrations")

DESCRIPTION = """\
Turns events that matter to people (runs that ended, users who must re-authorize, paused
schedules, finished collections, dead letters) into messages through apprise channels
(email, Slack, Microsoft Teams, webhooks, ...), by rules. Rule URLs are secrets: stored
encrypted, shown redacted.
"""


class MissingKeysError(ValueError):
    pass


class NotifierRuntime(ServiceRuntime):
    """The shared runtime plus the notifier's key ring, handlers and sender loop."""

    def __init__(self, settings: NotifierSettings) -> None:
        super().__init__(settings, migrations_dir=MIGRATIONS)
        keys = settings.encryption_keys.get_secret_value()
        if not keys.strip():
            raise MissingKeysError(
                "NOTIFIER_ENCRYPTION_KEYS is not set: give one or more Fernet keys, "
                "comma-separated (generate one with `amcctl keys generate`)"
            )
        self.notifier_settings = settings
        self.keys = KeyRing.from_csv(keys)
        self.metrics = NotifierMetrics(self.registry)
        self.sender = Sender(lambda: self.pool, settings, self.keys, self.metrics)
        handlers.register(self)
        self.gauges(self.metrics.refresh)
        self.background("sender")(self.sender.run)


def build_runtime(settings: NotifierSettings) -> NotifierRuntime:
    return NotifierRuntime(settings)


def create_app(settings: ServiceSettings) -> FastAPI:
    if not isinstance(settings, NotifierSettings):
        raise TypeError("the notifier needs NotifierSettings")
    return create_http_app(
        build_runtime(settings), routers=[router], title="amc-notifier", description=DESCRIPTION
    )


def main() -> None:
    serve(NotifierSettings(), create_app)
