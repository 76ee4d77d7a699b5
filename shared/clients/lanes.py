"""An httpx transport of lanes: one keep-alive connection per request in flight.

httpcore's connection pool re-examines every connection it holds on each state change (for
each idle one it counts the idle ones again, and asks the socket whether it is readable), so
its cost per request grows with the square of the connections open. A service with many
requests in flight to one host (the poller's polls, the token service's refreshes) spent a
fifth to most of its CPU there (bench/poller, bench/token profiles). Here each lane is a pool
of exactly one connection: a request takes an idle lane for its origin, most recently used
first (its connection is the warmest; the others may expire idle), and gives it back when
its response is closed, so the bookkeeping per request is constant.

A client built on it keeps everything else of httpx (timeouts, event hooks, streaming, and
proxies from the environment, which httpx mounts beside this transport).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx

Origin = tuple[bytes, bytes, int | None]


class _Lanes:
    """The lanes of one origin: the idle ones (last used on top) and how many exist."""

    def __init__(self, most: int, verify: ssl.SSLContext | bool) -> None:
        self._most = most
        self._verify = verify
        self._idle: asyncio.LifoQueue[httpx.AsyncHTTPTransport] = asyncio.LifoQueue()
        self.all: list[httpx.AsyncHTTPTransport] = []

    async def take(self) -> httpx.AsyncHTTPTransport:
        if not self._idle.empty():
            return self._idle.get_nowait()
        if len(self.all) < self._most:
            lane = httpx.AsyncHTTPTransport(
                verify=self._verify,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            self.all.append(lane)
            return lane
        return await self._idle.get()

    def give_back(self, lane: httpx.AsyncHTTPTransport) -> None:
        self._idle.put_nowait(lane)


class LaneTransport(httpx.AsyncBaseTransport):
    def __init__(self, lanes_per_origin: int, *, verify: ssl.SSLContext | bool = True) -> None:
        if lanes_per_origin < 1:
            raise ValueError(f"lanes_per_origin must be at least 1, not {lanes_per_origin}")
        self._most = lanes_per_origin
        # One TLS context for every lane: building one costs milliseconds.
        self._verify = ssl.create_default_context() if verify is True else verify
        self._origins: dict[Origin, _Lanes] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port)
        lanes = self._origins.get(origin)
        if lanes is None:
            lanes = self._origins[origin] = _Lanes(self._most, self._verify)
        lane = await lanes.take()
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            lanes.give_back(lane)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_GivesBack(response.stream, lanes, lane),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        origins, self._origins = self._origins, {}
        for lanes in origins.values():
            for lane in lanes.all:
                await lane.aclose()


class _GivesBack(httpx.AsyncByteStream):
    """The lane's response body; closing it (httpx does, once read) frees the lane."""

    def __init__(
        self, stream: httpx.AsyncByteStream, lanes: _Lanes, lane: httpx.AsyncHTTPTransport
    ) -> None:
        self._stream = stream
        self._lanes = lanes
        self._lane: httpx.AsyncHTTPTransport | None = lane

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._lane is not None:
                lane, self._lane = self._lane, None
                self._lanes.give_back(lane)
