"""LWA clients, one per region. In the service each region's calls go over aiohttp
(lwa_wire.py), up to `concurrency` kept-alive connections per host; a given httpx client
(tests observe LWA's answers through it) carries every call through LwaClient instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from services.token.lwa_wire import LwaGrant, LwaWire
from shared.clients.lwa import LwaClient, LwaRegion, LwaTokens


class LwaGrants(Protocol):
    """What the service needs from LWA (an LwaClient or an LwaPool): each call goes to the
    token host of the user's region."""

    async def refresh(self, refresh_token: str, region: LwaRegion = LwaRegion.NA) -> LwaTokens: ...

    async def exchange_code(
        self, code: str, redirect_uri: str, region: LwaRegion = LwaRegion.NA
    ) -> LwaTokens: ...


class _RegionGrants(Protocol):
    async def refresh(self, refresh_token: str) -> LwaTokens: ...

    async def exchange_code(self, code: str, redirect_uri: str) -> LwaTokens: ...


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
        self._wire: LwaWire | None = None
        self._regions: dict[LwaRegion, _RegionGrants]
        if http is None:
            wire = self._wire = LwaWire(concurrency)
            self._regions = {
                r: LwaGrant(wire, base_urls[r], client_id, client_secret, timeout)
                for r in LwaRegion
            }
        else:  # a given client (tests observe LWA's answers through it) carries every call
            self._regions = {
                r: LwaClient(base_urls[r], client_id, client_secret, http, timeout)
                for r in LwaRegion
            }

    async def refresh(self, refresh_token: str, region: LwaRegion = LwaRegion.NA) -> LwaTokens:
        return await self._regions[region].refresh(refresh_token)

    async def exchange_code(
        self, code: str, redirect_uri: str, region: LwaRegion = LwaRegion.NA
    ) -> LwaTokens:
        return await self._regions[region].exchange_code(code, redirect_uri)

    async def aclose(self) -> None:
        """Close the connections this pool opened (a given client is its owner's to close);
        the pool stays usable and opens new ones on its next call."""
        if self._wire is not None:
            await self._wire.aclose()
