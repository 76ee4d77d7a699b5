"""An httpx transport that sends each request over aiohttp's connection pool.

The token service's drain is bound by the CPU of its one event loop: every LWA answer is
handled there. Through httpx's own stack (httpcore, anyio, h11, pure Python) a call cost
0.6 CPU-ms; aiohttp's (C parser, asyncio protocols) costs 0.2, 0.39 with httpx's client
above it (bench/token/NOTES.md). Callers keep httpx's API, its typed errors (the
shared/clients error mapping reads them) and MockTransport in tests; only the wire changes.

httpx keeps what it does above a transport: cookies, redirects (none here: aiohttp's are
off), decoding of Content-Encoding (aiohttp's is off, so a body is decoded once), and the
proxies of the environment, which httpx mounts beside this transport.
"""

from __future__ import annotations

import ssl

import aiohttp
import httpx

# A kept connection unused for this long is closed: httpcore's default keep-alive expiry,
# kept so that a quiet LWA host sees the same connection behaviour as before.
KEEPALIVE_S = 5.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `per_host` connections to each host; a request waits for a free one."""

    def __init__(self, per_host: int, *, verify: ssl.SSLContext | bool = True) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, not {per_host}")
        self._per_host = per_host
        # One TLS context for every connection: building one costs milliseconds.
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context() if verify is True else verify
        )
        # Made on the first request: a session belongs to the loop that runs it.
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,
                    limit_per_host=self._per_host,
                    ssl=self._ssl,
                    keepalive_timeout=KEEPALIVE_S,
                ),
                # httpx sends its own headers, keeps cookies and decodes bodies.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                # httpx routes proxied requests to its own proxy transports; reading the
                # environment again here would cost a thread hop per request.
                trust_env=False,
            )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("pool"), given.get("connect"), given.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            # httpx's pool timeout bounds the wait for a connection, which is aiohttp's
            # `connect` (it includes that wait); httpx's connect is aiohttp's sock_connect.
            pool, connect, read = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=None if pool is None or connect is None else pool + connect,
                sock_connect=connect,
                sock_read=read,
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as answer:
                content = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except TimeoutError as exc:  # sock_read, or the wait for a connection
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientOSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc), request=request) from exc
        return httpx.Response(
            status_code=answer.status,
            headers=answer.raw_headers,
            content=content,
            extensions={
                "http_version": b"HTTP/1.0"
                if answer.version == aiohttp.HttpVersion10
                else b"HTTP/1.1"
            },
        )

    async def aclose(self) -> None:
        """Close the connections; a later request opens new ones."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
