"""Token service wiring: runtime, handlers, refresh loops and the management API."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from services.token.api import ApiContext, token_router
from services.token.handlers import register_handlers
from services.token.lwa_pool import LwaPool
from services.token.metrics import TokenGauges
from services.token.refresher import Refresher, RefreshMetrics
from services.token.settings import TokenSettings
from services.token.vault import Vault
from shared import http
from shared.config import ServiceSettings
from shared.runtime import ServiceRuntime
from shared.service import serve

MIGRATIONS = Path(__file__).with_name("migrations")

DESCRIPTION = """\
Holds the Login with Amazon client credentials and users' refresh tokens (encrypted), keeps
access tokens fresh, and answers `token.refresh_requested` events.

Every route below `/tokens` and `/oauth` requires `Authorization: Bearer <API key>`. That
includes `POST /oauth/exchange`, which the web front end's OAuth redirect handler calls from
its backend (the backend holds the key; browsers never call this service). No answer ever
contains a token.
"""


class TokenService:
    """Everything one token-service process runs, built from settings."""

    def __init__(self, settings: TokenSettings, *, lwa_http: httpx.AsyncClient | None = None):
        self.settings = settings
        self.vault = Vault.from_settings(settings)
        self.runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
        self.lwa = LwaPool(
            settings.lwa_base_urls,
            settings.lwa_client_id,
            settings.lwa_client_secret.get_secret_value(),
            concurrency=settings.concurrency,
            timeout=settings.lwa_timeout_s,
            http=lwa_http,
        )
        self.refresher = Refresher(
            pool=lambda: self.runtime.pool,
            outbox=self.runtime.outbox,
            settings=settings,
            vault=self.vault,
            lwa=self.lwa,
            metrics=RefreshMetrics(self.runtime.registry),
            tracer=self.runtime.tracer,
            listen_dsn=settings.database_url,
            schema=self.runtime.schema,
        )
        register_handlers(self.runtime, settings, self.vault)
        self.runtime.gauges(TokenGauges(self.runtime.registry).refresh)
        self.runtime.background("refresh-cycle")(self.refresher.proactive_loop)
        self.runtime.background("refresh-requests")(self.refresher.on_demand_loop)

    def app(self) -> FastAPI:
        router = token_router(ApiContext(self.runtime, self.settings, self.vault, self.lwa))
        return http.create_app(
            self.runtime, routers=[router], title="amc-token", description=DESCRIPTION
        )


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    assert isinstance(settings, TokenSettings)
    return TokenService(settings).runtime


def create_app(settings: ServiceSettings) -> FastAPI:
    assert isinstance(settings, TokenSettings)
    return TokenService(settings).app()


def main() -> None:
    serve(TokenSettings(), create_app)
