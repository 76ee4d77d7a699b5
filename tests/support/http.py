"""Serve an ASGI app over real HTTP inside the test's event loop (its lifespan runs too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from amclocal.ports import free_port


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            # Outlives httpx's 5 s idle pool, or a reused connection races the server's close.
            timeout_keep_alive=30,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def json_of(response: httpx.Response, status: int = 200) -> Any:
    """The answer's JSON, after checking its status (the body is the failure message)."""
    assert response.status_code == status, response.text
    return response.json()
