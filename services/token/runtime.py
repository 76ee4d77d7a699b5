"""The token service's runtime: the shared parts plus its vault, LWA pool, handlers and the
proactive and on-demand refresh loops.

Routes reach it through `RuntimeDep`, bound by `app.create_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends

from services.token.handlers import register_handlers
from services.token.lwa_pool import LwaPool
from services.token.metrics import token_gauges
from services.token.refresher import Refresher, RefreshMetrics
from services.token.settings import TokenSettings
from services.token.vault import Vault
from shared.http import Wired
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


class TokenRuntime(ServiceRuntime):
    """Everything one token-service process runs, built from settings. `lwa_http` lets a
    test give the LWA client its own HTTP client."""

    def __init__(self, settings: TokenSettings, *, lwa_http: httpx.AsyncClient | None = None):
        super().__init__(settings, migrations_dir=MIGRATIONS, owner_lock=True)
        self.token_settings = settings
        self.vault = Vault.from_settings(settings)
        self.lwa = LwaPool(
            settings.lwa_base_urls,
            settings.lwa_client_id,
            settings.lwa_client_secret.get_secret_value(),
            concurrency=settings.concurrency,
            timeout=settings.lwa_timeout_s,
            http=lwa_http,
        )
        self.refresher = Refresher(
            pool=lambda: self.pool,
            outbox=self.outbox,
            settings=settings,
            vault=self.vault,
            lwa=self.lwa,
            metrics=RefreshMetrics(self.registry),
            tracer=self.tracer,
            listen_dsn=settings.database_url,
            schema=self.schema,
            ownership=self.ownership,
        )
        register_handlers(self, settings, self.vault)
        self.gauges(token_gauges(self.registry).refresh)
        self.background("refresh-cycle")(self.refresher.proactive_loop)
        self.background("refresh-requests")(self.refresher.on_demand_loop)

    async def stop(self) -> None:
        await super().stop()
        # After the loops: a drain that is stopping still stores the calls in flight. aiohttp
        # warns of connections left open at exit; a restart opens new ones.
        await self.lwa.aclose()


def build_runtime(
    settings: TokenSettings, *, lwa_http: httpx.AsyncClient | None = None
) -> TokenRuntime:
    return TokenRuntime(settings, lwa_http=lwa_http)


wired_runtime = Wired[TokenRuntime]("the token runtime")
RuntimeDep = Annotated[TokenRuntime, Depends(wired_runtime)]
