"""Serving the simulator: in the current event loop for tests, or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from amclocal.simulator.app import create_app
from amclocal.simulator.config import SimConfig
from amclocal.simulator.persist import StateFile

_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningSimulator:
    base_url: str
    port: int


# Longer than any client pool keeps an idle connection (httpx: 5 s), so the client always
# closes first: with uvicorn's default of 5 s the two race, and a request sent on a
# connection the server is closing fails with httpx.ReadError.
KEEP_ALIVE_S = 30


class _EmbeddedServer(uvicorn.Server):
    """Leaves signal handling to the host process (pytest's Ctrl-C must still work)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator in this event loop; port 0 picks a free port."""
    # An explicit IPPROTO_TCP, or asyncio skips TCP_NODELAY on accepted connections and
    # every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _EmbeddedServer(
        uvicorn.Config(
            create_app(config),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the simulator stopped during startup")
                await asyncio.sleep(0.01)
        bound_port = sock.getsockname()[1]
        yield RunningSimulator(base_url=f"http://{host}:{bound_port}", port=bound_port)
    finally:
        server.should_exit = True
        await task
        sock.close()


def serve_forever(config: SimConfig, host: str, port: int, state_file: Path | None = None) -> None:
    app = create_app(config, StateFile(state_file) if state_file is not None else None)
    # No access log: result URLs carry their signature in the query string.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    # What reads advanced (executions that started or finished) is kept at a clean stop.
    app.state.sim.save()
