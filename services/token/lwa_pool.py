"""LWA clients, one per region, over one httpx client whose requests travel on aiohttp
(aio_transport.py): up to `concurrency` keep-alive connections to each region's host, and a
call waits only while all of them are busy.

httpcore's own pool does work proportional to (waiting requests x open connections) on every
state change; shared/clients/lanes.py avoided that, but its per-call cost (httpcore, anyio,
h11) still made LWA calls most of the drain's CPU, and the drain is bound by its one loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from services.token.aio_transport import AiohttpTransport
from shared.clients.lwa import LwaClient, LwaRegion, LwaTokens


class LwaGrants(Protocol):
    """What the service needs from LWA (an LwaClient or an LwaPool): each call goes to the
    token host of the user's region."""

    async def refresh(self, refresh_token: str, region: LwaRegion = LwaRegion.NA) -> LwaTokens: ...

    async def exchange_code(
        self, code: str, redirect_uri: str, region: LwaRegion = LwaRegion.NA
    ) -> LwaTokens: ...


class LwaPool:
    def __init__(
        self,
        base_urls: Mapping[LwaRegion, str],
        client_id: str,
        client_secret: str,
        *,
        concurrency: int,
        timeout: float,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        # A given client (tests observe LWA's answers through it) carries every call.
        self._owned = http is None
        self._transport = AiohttpTransport(concurrency) if http is None else None
        self._http = http or httpx.AsyncClient(transport=self._transport)
        self._regions = {
            region: LwaClient(base_urls[region], client_id, client_secret, self._http, timeout)
            for region in LwaRegion
        }

    async def refresh(self, refresh_token: str, region: LwaRegion = LwaRegion.NA) -> LwaTokens:
        return await self._regions[region].refresh(refresh_token)

    async def exchange_code(
        self, code: str, redirect_uri: str, region: LwaRegion = LwaRegion.NA
    ) -> LwaTokens:
        return await self._regions[region].exchange_code(code, redirect_uri)

    async def disconnect(self) -> None:
        """Close the connections this pool opened (on a service stop); the pool stays usable
        and opens new ones on its next call."""
        if self._transport is not None:
            await self._transport.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()
