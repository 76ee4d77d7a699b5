"""Login with Amazon: registered apps, users' refresh tokens, one-time codes, access tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from amclocal.simulator.config import (
    ClientRegistration,
    CodeRegistration,
    SimConfig,
    UserRegistration,
)


class LwaError(Exception):
    """An OAuth error answer: status plus LWA's {error, error_description} body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class _User:
    user_id: str
    refresh_token: str
    client_id: str | None
    revoked: bool = False


@dataclass
class _Code:
    user_id: str
    redirect_uri: str
    client_id: str | None


@dataclass(frozen=True)
class AccessGrant:
    """Whom an access token speaks for, and until when (monotonic seconds)."""

    user_id: str
    client_id: str
    expires_at: float
    serial: int = 0  # the n-th access token LWA issued: how the request log names a token


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: float


@dataclass
class Identity:
    clients: dict[str, str] = field(default_factory=dict)
    users: dict[str, _User] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    access: dict[str, AccessGrant] = field(default_factory=dict)
    # Access tokens withdrawn before their expiry, kept only so the request log can say
    # which one a refused request carried.
    withdrawn: dict[str, AccessGrant] = field(default_factory=dict)
    issued: int = 0
    # Refresh token -> user, rebuilt from `users` when it misses or is stale: a scan of all
    # users per refresh made a benchmark of 10,000 users quadratic. Not kept (persist.py).
    _by_refresh: dict[str, _User] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def register_client(self, reg: ClientRegistration) -> None:
        self.clients[reg.client_id] = reg.client_secret

    def register_user(self, reg: UserRegistration) -> None:
        self.users[reg.user_id] = _User(reg.user_id, reg.refresh_token, reg.client_id)

    def register_code(self, reg: CodeRegistration) -> None:
        self.codes[reg.code] = _Code(reg.user_id, reg.redirect_uri, reg.client_id)

    def revoke(self, user_id: str) -> bool:
        user = self.users.get(user_id)
        if user is None:
            return False
        user.revoked = True
        # Consent withdrawn: the access tokens already issued stop working too.
        self.access = {t: g for t, g in self.access.items() if g.user_id != user_id}
        return True

    def expire_access_tokens(self, user_id: str, now: float) -> int:
        expired = [t for t, g in self.access.items() if g.user_id == user_id]
        for token in expired:
            grant = self.access[token]
            self.access[token] = AccessGrant(grant.user_id, grant.client_id, now, grant.serial)
        return len(expired)

    def revoke_access_tokens(self, user_id: str) -> int:
        """Withdraw the user's access tokens before their expiry, keeping the grant: the
        refresh token still gets new ones (a token revoked or rotated at Amazon)."""
        revoked = [t for t, g in self.access.items() if g.user_id == user_id]
        for token in revoked:
            self.withdrawn[token] = self.access.pop(token)
        return len(revoked)

    def grant(self, form: dict[str, str], now: float, config: SimConfig) -> IssuedTokens:
        """POST /auth/o2/token: authenticate the client, then honour the grant."""
        client_id = form.get("client_id", "")
        secret = self.clients.get(client_id)
        if secret is None or not secrets.compare_digest(secret, form.get("client_secret", "")):
            raise LwaError(401, "invalid_client", "Client authentication failed")
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            user = self._user_for_refresh(form.get("refresh_token", ""), client_id)
            if config.rotate_refresh_tokens:
                user.refresh_token = _refresh_token()
        elif grant_type == "authorization_code":
            user = self._user_for_code(form, client_id)
        elif grant_type is None:
            raise LwaError(400, "invalid_request", "The request is missing grant_type")
        else:
            raise LwaError(400, "unsupported_grant_type", f"Unsupported grant_type {grant_type}")
        access_token = "Atza|" + secrets.token_urlsafe(32)
        ttl = config.access_token_ttl_seconds
        self.issued += 1
        self.access[access_token] = AccessGrant(user.user_id, client_id, now + ttl, self.issued)
        return IssuedTokens(access_token, user.refresh_token, ttl)

    def _user_for_refresh(self, refresh_token: str, client_id: str) -> _User:
        if not refresh_token:
            raise LwaError(400, "invalid_request", "The request is missing refresh_token")
        user = self._find_refresh(refresh_token)
        if user is None or user.revoked:
            raise LwaError(
                400, "invalid_grant", "The request has an invalid grant parameter : refresh_token"
            )
        if user.client_id is not None and user.client_id != client_id:
            raise LwaError(400, "unauthorized_client", "Not authorized for requested operation")
        return user

    def _find_refresh(self, refresh_token: str) -> _User | None:
        """The first user (in registration order) holding this refresh token, as a scan finds it."""
        user = self._by_refresh.get(refresh_token)
        if (
            user is None
            or user.refresh_token != refresh_token
            or self.users.get(user.user_id) is not user
        ):
            self._by_refresh = {}
            for u in self.users.values():
                self._by_refresh.setdefault(u.refresh_token, u)
            user = self._by_refresh.get(refresh_token)
        return user

    def _user_for_code(self, form: dict[str, str], client_id: str) -> _User:
        code = self.codes.get(form.get("code", ""))
        if code is None or (code.client_id is not None and code.client_id != client_id):
            raise LwaError(
                400, "invalid_grant", "The request has an invalid grant parameter : code"
            )
        if code.redirect_uri != form.get("redirect_uri"):
            raise LwaError(400, "invalid_grant", "redirect_uri does not match the authorization")
        del self.codes[form["code"]]  # a code exchanges once
        # Authorizing again gives a fresh refresh token and lifts an earlier revocation.
        user = _User(code.user_id, _refresh_token(), client_id)
        self.users[user.user_id] = user
        return user


def _refresh_token() -> str:
    return "Atzr|" + secrets.token_urlsafe(48)
