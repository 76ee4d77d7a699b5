"""LWA's token endpoint over aiohttp: the service's production path to LWA.

The drain is bound by the CPU of its one event loop, which handles every LWA answer. Through
httpx (its client, then httpcore, anyio and h11, all pure Python) a call cost 0.6 CPU-ms on
the benchmark machine; on aiohttp (C parser, asyncio protocols) 0.2, and 0.39 with httpx's
client above aiohttp (bench/token/NOTES.md). So the token service posts to LWA here and
keeps httpx for nothing on this path; what a grant means (its errors, its body) is
shared/clients/lwa.py's, the same as for LwaClient, which tests and other services use.

Connections: up to `per_host` kept alive per LWA host; a call waits while all are busy (no
bound on that wait, as with the lanes before). No cookies are kept: a token call carries no
session, and one user's call must not carry another's.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx

from shared.clients.errors import TransportError, redact
from shared.clients.lwa import LwaGrants, LwaTokens, grant_error, parse_grant

_GRANT_PATH = "/auth/o2/token"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# A kept connection unused this long is closed: httpcore's keep-alive expiry, as before.
KEEPALIVE_S = 5.0


class LwaWire:
    """Sessions of one event loop; each LWA host (region) gets its own `LwaGrant`."""

    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, not {per_host}")
        self._per_host = per_host
        # Made on the first call: a session belongs to the loop that runs it.
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=self._per_host, keepalive_timeout=KEEPALIVE_S
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                # aiohttp would read the proxy settings in a thread on every call: each
                # LwaGrant reads them once instead (`proxy_for`).
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connections; a later call opens new ones."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class LwaGrant(LwaGrants):
    """POST {base_url}/auth/o2/token over aiohttp, as LwaClient does over httpx: no retry,
    typed errors."""

    def __init__(
        self, wire: LwaWire, base_url: str, client_id: str, client_secret: str, timeout: float
    ) -> None:
        self._wire = wire
        self._url = base_url.rstrip("/") + _GRANT_PATH
        self._proxy = proxy_for(self._url)
        super().__init__(client_id, client_secret)
        # Connecting and each read are bounded, as httpx's timeout bounded them.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)

    async def _post(self, form: dict[str, str], secrets: tuple[str, ...]) -> LwaTokens:
        with _transport_errors(secrets):
            async with self._wire.session().post(
                self._url,
                # Encoded here: aiohttp's FormData for a dict cost a third of a call's CPU.
                data=urlencode(form).encode(),
                headers=_FORM,
                timeout=self._timeout,
                proxy=self._proxy,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
        if not 200 <= answer.status < 300:
            # Rare: the shared error mapping reads an httpx response.
            response = httpx.Response(
                answer.status,
                headers=answer.raw_headers,
                content=content,
                request=httpx.Request("POST", self._url),
            )
            raise grant_error(response, secrets)
        return parse_grant(content, answer.status, form.get("refresh_token"))


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, in
    either case; NO_PROXY exempts hosts), as httpx honoured it: a pod behind an egress proxy
    reaches LWA through it."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


@contextmanager
def _transport_errors(secrets: tuple[str, ...]) -> Iterator[None]:
    """aiohttp's network failures as TransportError, worded as shared/clients does httpx's."""
    try:
        yield
    except TimeoutError as exc:
        raise TransportError(redact(f"LWA: timed out ({type(exc).__name__})", secrets)) from exc
    except aiohttp.ClientError as exc:
        raise TransportError(
            redact(f"LWA: request failed ({type(exc).__name__}: {exc})", secrets)
        ) from exc
