"""Who is signed in: signed session cookies, the optional SSO header, and CSRF tokens.

The cookie is `<random id>.<HMAC-SHA256 of the id>`; the database keeps only the id's hash,
so neither a copy of the table nor a forged cookie opens a session. Cookies are HttpOnly and
SameSite=Strict (no other site can make the browser send them); every POST also carries the
session's CSRF token from its form, compared in constant time.

The sign-in form comes before any session, so it has a defence of its own (against login
CSRF: another site signing the browser in as someone else): GET /signin sets a short-lived
SameSite=Strict cookie holding a signed random nonce, and the form carries an HMAC of that
nonce. A POST needs both, matching: another site can neither read the cookie nor compute the
HMAC without the console's key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response

from services.console import store
from services.console.settings import ConsoleSettings
from shared.runtime import ServiceRuntime

COOKIE = "amc_console"
SIGNIN_COOKIE = "amc_console_signin"
SIGNIN_TTL_S = 3600


@dataclass(frozen=True)
class Principal:
    name: str
    method: str
    csrf: str


class SignInRequired(Exception):
    """Raised by pages when no valid session exists; the app answers with the sign-in page."""


class CsrfRejected(Exception):
    pass


def signing_key(settings: ConsoleSettings) -> bytes:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    # Derived, not the key itself: a leaked cookie signature says nothing about API_KEY.
    base = settings.api_key.get_secret_value() if settings.api_key else secrets.token_hex(32)
    return hmac.new(base.encode(), b"amc-console-session", hashlib.sha256).digest()


def _sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def hash_id(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def unsign(key: bytes, cookie: str | None) -> str | None:
    if not cookie or "." not in cookie:
        return None
    value, _, signature = cookie.rpartition(".")
    return value if hmac.compare_digest(_sign(key, value), signature) else None


def api_key_matches(settings: ConsoleSettings, given: str) -> bool:
    if settings.api_key is None:
        return False
    return hmac.compare_digest(given.encode(), settings.api_key.get_secret_value().encode())


async def start_session(
    runtime: ServiceRuntime,
    settings: ConsoleSettings,
    response: Response,
    principal: str,
    method: str,
) -> Principal:
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with runtime.pool.acquire() as conn:
        await store.create_session(
            conn,
            hash_id(session_id),
            principal,
            method,
            csrf,
            timedelta(hours=settings.session_hours),
        )
    response.set_cookie(
        COOKIE,
        f"{session_id}.{_sign(signing_key(settings), session_id)}",
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    return Principal(principal, method, csrf)


async def end_session(runtime: ServiceRuntime, settings: ConsoleSettings, request: Request) -> None:
    session_id = unsign(signing_key(settings), request.cookies.get(COOKIE))
    if session_id:
        async with runtime.pool.acquire() as conn:
            await store.delete_session(conn, hash_id(session_id))


async def current(
    runtime: ServiceRuntime, settings: ConsoleSettings, request: Request
) -> Principal | None:
    session_id = unsign(signing_key(settings), request.cookies.get(COOKIE))
    if session_id:
        async with runtime.pool.acquire() as conn:
            session = await store.get_session(conn, hash_id(session_id))
        if session is not None:
            return Principal(session.principal, session.method, session.csrf)
    return None


def sso_user(settings: ConsoleSettings, request: Request) -> str | None:
    """The user an SSO proxy vouches for, when the console is configured to trust one."""
    if not settings.trusted_user_header:
        return None
    value = request.headers.get(settings.trusted_user_header, "").strip()
    return value[:200] or None


def check_csrf(principal: Principal, given: str | None) -> None:
    if not given or not hmac.compare_digest(given.encode(), principal.csrf.encode()):
        raise CsrfRejected


# Who a machine caller is in the audit log: the key is shared, so no person can be named.
API_KEY_PRINCIPAL = "api-key"


def bearer(settings: ConsoleSettings, request: Request) -> Principal | None:
    """`Authorization: Bearer <API key>` (compared in constant time), for the JSON API. No
    CSRF token: a browser never adds this header on its own, so no other site can forge it."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not api_key_matches(settings, token.strip()):
        return None
    return Principal(API_KEY_PRINCIPAL, "bearer", "")


def _signin_field(key: bytes, nonce: str) -> str:
    # A different message than the cookie's signature: the field is not the cookie's value.
    return _sign(key, f"signin-form:{nonce}")


def new_signin_token(key: bytes) -> tuple[str, str]:
    """(cookie value, form field) for one sign-in form."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(key, nonce)}", _signin_field(key, nonce)


def signin_token_ok(key: bytes, cookie: str | None, given: str | None) -> bool:
    nonce = unsign(key, cookie)
    if nonce is None or not given:
        return False
    return hmac.compare_digest(_signin_field(key, nonce).encode(), given.encode())


def set_signin_cookie(settings: ConsoleSettings, response: Response, value: str) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=SIGNIN_TTL_S,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/signin",
    )
