"""LWA clients, one per region, over one client of lanes (shared/clients/lanes.py).

httpcore's pool does work proportional to (waiting requests x open connections) on every
state change, so one pool of 50 connections spent most of the service's CPU on bookkeeping;
with lanes each call in flight has a keep-alive connection of its own, taken and given back,
and a call waits only while all `concurrency` lanes of its region's host are busy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from shared.clients.lanes import LaneTransport
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
        self._http = http or httpx.AsyncClient(transport=LaneTransport(concurrency))
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

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()
