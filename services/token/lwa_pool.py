"""LWA clients as lanes: one HTTP connection per call in flight, taken and given back.

httpcore's pool does work proportional to (waiting requests x open connections) on every
state change, so one pool of 50 connections spends most of the service's CPU on
bookkeeping; even several pools of a few connections used in turn cost about twice what a
call needs, and a call may queue in a busy pool while a connection elsewhere idles. Here a
lane is a client of exactly one keep-alive connection: a call takes an idle lane of its
region and gives it back, so the pool's bookkeeping is constant per call and a call never
waits while a lane is free (measured with bench/token).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import httpx

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
        self._owned: list[httpx.AsyncClient] = []
        self._idle: dict[LwaRegion, asyncio.LifoQueue[LwaClient]] = {}
        # One TLS context for all lanes: building one costs milliseconds.
        tls = ssl.create_default_context()
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        for region in LwaRegion:
            idle: asyncio.LifoQueue[LwaClient] = asyncio.LifoQueue()
            # A given client (tests observe LWA's answers through it) is every lane at once.
            for _ in range(concurrency):
                lane = http
                if lane is None:
                    lane = httpx.AsyncClient(verify=tls, limits=one)
                    self._owned.append(lane)
                idle.put_nowait(
                    LwaClient(base_urls[region], client_id, client_secret, lane, timeout)
                )
            self._idle[region] = idle

    @contextlib.asynccontextmanager
    async def _lane(self, region: LwaRegion) -> AsyncIterator[LwaClient]:
        # LIFO: the lanes used last have warm connections; the others may expire idle.
        idle = self._idle[region]
        client = await idle.get()
        try:
            yield client
        finally:
            idle.put_nowait(client)

    async def refresh(self, refresh_token: str, region: LwaRegion = LwaRegion.NA) -> LwaTokens:
        async with self._lane(region) as lwa:
            return await lwa.refresh(refresh_token)

    async def exchange_code(
        self, code: str, redirect_uri: str, region: LwaRegion = LwaRegion.NA
    ) -> LwaTokens:
        async with self._lane(region) as lwa:
            return await lwa.exchange_code(code, redirect_uri)

    async def aclose(self) -> None:
        for http in self._owned:
            await http.aclose()
