"""The lifecycle every HTTP client here shares: use a given httpx client, or own one."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


class HttpClientBase:
    """Holds `self._http`: the caller's client (left open on close, the caller shares it) or
    one made here (closed by `aclose` or on leaving `async with`)."""

    def __init__(self, http: httpx.AsyncClient | None, *, timeout: float | None = None) -> None:
        self._owns_http = http is None
        if http is not None:
            self._http = http
        elif timeout is not None:
            self._http = httpx.AsyncClient(timeout=timeout)
        else:
            self._http = httpx.AsyncClient()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
