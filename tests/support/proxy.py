"""A TCP proxy that a test can cut, to silence a client without killing it or its peer.

`cut()` black-holes every connection open at that moment: bytes in both directions are read
and dropped, and the connections stay open, so the client waits for answers that never come
(a broker that the client's last request never reached). Connections made after the cut pass
bytes as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Link:
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    cut: bool = False


class TcpProxy:
    def __init__(self, port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self._host = host
        self._target_port = target_port
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self.port)

    def cut(self) -> None:
        for link in self._links:
            link.cut = True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for writer in link.writers:
                writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link([client_w])
        self._links.add(link)
        try:
            target_r, target_w = await asyncio.open_connection(self._host, self._target_port)
            link.writers.append(target_w)
            await asyncio.gather(
                self._pipe(link, client_r, target_w), self._pipe(link, target_r, client_w)
            )
        except OSError:
            pass
        finally:
            self._links.discard(link)
            for writer in link.writers:
                writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(link: _Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if link.cut:
                    continue
                sink.write(data)
                await sink.drain()
        if not link.cut:
            sink.close()
