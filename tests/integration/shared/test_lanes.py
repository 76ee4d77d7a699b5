"""The lane transport against a real local HTTP/1.1 server that counts its connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from amclocal.ports import free_port
from shared.clients.lanes import LaneTransport


@dataclass
class Server:
    """Answers each request with its path after `delay_s`, keeping connections open."""

    port: int
    delay_s: float = 0.0
    opened: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            while request_line := await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                await asyncio.sleep(self.delay_s)
                body = request_line.split()[1]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                await writer.drain()
                if body == b"/held":  # the body's end waits for the test's word
                    await self.release.wait()
                writer.write(body)
                await writer.drain()
                self.in_flight -= 1
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(port=free_port())
    listening = await asyncio.start_server(srv.handle, "127.0.0.1", srv.port)
    async with listening:
        yield srv


async def test_requests_in_turn_reuse_one_connection(server: Server) -> None:
    async with httpx.AsyncClient(transport=LaneTransport(8), base_url=server.url) as http:
        for i in range(5):
            assert (await http.get(f"/r{i}")).text == f"/r{i}"
    assert server.opened == 1


async def test_requests_at_once_open_at_most_the_lanes_and_all_complete(server: Server) -> None:
    server.delay_s = 0.05
    async with httpx.AsyncClient(transport=LaneTransport(3), base_url=server.url) as http:
        answers = await asyncio.gather(*(http.get(f"/r{i}") for i in range(12)))
    assert [a.text for a in answers] == [f"/r{i}" for i in range(12)]
    assert server.opened == 3
    assert server.most_in_flight == 3


async def test_a_streamed_response_holds_its_lane_until_closed(server: Server) -> None:
    async with httpx.AsyncClient(transport=LaneTransport(1), base_url=server.url) as http:
        async with http.stream("GET", "/held") as held:
            waiting = asyncio.create_task(http.get("/next"))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # the only lane is the stream's
            server.release.set()
            assert await held.aread() == b"/held"
        assert (await waiting).text == "/next"
    assert server.opened == 1


async def test_a_failed_request_gives_its_lane_back() -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient(transport=LaneTransport(1), base_url=refused) as http:
        for _ in range(3):  # with the lane lost, the second would wait for ever
            with pytest.raises(httpx.ConnectError):
                await asyncio.wait_for(http.get("/"), timeout=10)


async def test_each_origin_has_lanes_of_its_own(server: Server) -> None:
    other = Server(port=free_port())
    async with (
        await asyncio.start_server(other.handle, "127.0.0.1", other.port),
        httpx.AsyncClient(transport=LaneTransport(1)) as http,
        http.stream("GET", f"{server.url}/held") as held,
    ):
        # The first origin's only lane is taken; the second origin's is free.
        assert (await asyncio.wait_for(http.get(f"{other.url}/x"), 10)).text == "/x"
        server.release.set()
        await held.aread()
    assert (server.opened, other.opened) == (1, 1)


def test_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="lanes_per_origin must be at least 1, not 0"):
        LaneTransport(0)
