"""Typed failures of the LWA and AMC clients, and the mapping from HTTP answers to them.

The clients never retry: they classify, and the services decide what to do with each class.
Messages are built from the server's own words with every known secret redacted, so an
exception can be logged or put into an event as is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

DEFAULT_RETRY_AFTER = 1.0
_MAX_DETAIL_CHARS = 500
_REDACTED = "[redacted]"


class ApiError(Exception):
    """Base of every client failure. `status` is the HTTP status, None when none was received."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return self.message


class UnauthorizedError(ApiError):
    """401: the access token is missing, unknown or expired (AMC), or the client is wrong (LWA)."""


class RateLimitedError(ApiError):
    """429: throttled. `retry_after` is how many seconds to wait: the server's Retry-After
    when `server_named` is true; otherwise a placeholder (DEFAULT_RETRY_AFTER) that a caller
    who counts consecutive throttles replaces with its own backoff."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 429,
        code: str | None = None,
        retry_after: float,
        server_named: bool = True,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after
        self.server_named = server_named


class ClientRequestError(ApiError):
    """Any other 4xx: the request itself is wrong; sending it again will not help."""


class InvalidGrantError(ClientRequestError):
    """LWA refused the refresh token or code for good: a person must authorize again."""


class ResultsExpiredError(ClientRequestError):
    """The pre-signed result URL no longer serves the file (it lives 10 minutes; how long AMC
    keeps the results themselves is not published)."""


class ServerError(ApiError):
    """5xx: the server failed; the same request may succeed later."""


class TransportError(ApiError):
    """No HTTP answer at all: timeout, refused or dropped connection."""


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER
    return max(seconds, 0.0)


def _readable_retry_after(value: str | None) -> bool:
    """Whether a Retry-After header says how long to wait (seconds or an HTTP date)."""
    if not value or not value.strip():
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        pass
    try:
        parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return False
    return True


def _describe(response: httpx.Response) -> tuple[str | None, str]:
    """The error code and human message a server put in its body (LWA and AMC shapes)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("error") or body.get("code")
        detail = (
            body.get("error_description")
            or body.get("message")
            or body.get("details")
            or body.get("Message")
            or code
        )
        if detail is not None:
            return (str(code) if code is not None else None), str(detail)[:_MAX_DETAIL_CHARS]
    text = response.text.strip()[:_MAX_DETAIL_CHARS]
    return None, text or response.reason_phrase


def error_from_response(
    response: httpx.Response, service: str, secrets: Iterable[str] = ()
) -> ApiError:
    """The typed error for a non-2xx answer. The response body must already be read."""
    status = response.status_code
    code, detail = _describe(response)
    message = redact(f"{service} answered {status}: {detail}", secrets)
    if status == 401:
        return UnauthorizedError(message, status=status, code=code)
    if status == 429:
        header = response.headers.get("Retry-After")
        return RateLimitedError(
            message,
            status=status,
            code=code,
            retry_after=parse_retry_after(header),
            server_named=_readable_retry_after(header),
        )
    if 400 <= status < 500:
        return ClientRequestError(message, status=status, code=code)
    if status >= 500:
        return ServerError(message, status=status, code=code)
    return ApiError(message, status=status, code=code)


@contextmanager
def transport_errors(service: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn httpx's network failures into TransportError."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransportError(
            redact(f"{service}: timed out ({type(exc).__name__})", secrets)
        ) from exc
    except httpx.RequestError as exc:
        raise TransportError(
            redact(f"{service}: request failed ({type(exc).__name__}: {exc})", secrets)
        ) from exc
