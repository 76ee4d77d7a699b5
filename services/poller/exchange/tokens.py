"""The poller's token reader: the cached access token of a user, opened just before a call.

Tokens come from token.refreshed events into the poller's own table; this is the one place
that reads and decrypts them, so the AMC gateway only ever receives a Token to send. A
ciphertext is decrypted once and kept in memory (the same token serves every poll of its
user until it changes); the table stays the truth of which token is current and usable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from services.poller import token_store
from services.poller.exchange import failure_policy
from services.poller.token_store import CachedToken
from shared.crypto import DecryptionError, KeyRing, token_fingerprint
from shared.outbox import Connection

# Decrypted tokens kept, by ciphertext: about one per user with work in flight (a user's
# token changes hourly), with room for the token being replaced.
_OPENED_MAX = 4096


class Token:
    """A decrypted access token and its fingerprint (what a refusal names, never the token)."""

    __slots__ = ("fingerprint", "issued_at", "value")

    def __init__(
        self, value: str, issued_at: datetime | None = None, fingerprint: str | None = None
    ) -> None:
        self.value = value
        self.fingerprint = fingerprint or token_fingerprint(value)
        # When LWA issued it, else when the poller received it (None: not known).
        self.issued_at = issued_at

    def __repr__(self) -> str:
        return f"Token(fp={self.fingerprint})"


class TokenReader:
    def __init__(self, pool: asyncpg.Pool[Any], keys: KeyRing | None, margin_s: float) -> None:
        self._pool = pool
        self._keys = keys
        self._margin_s = margin_s
        # ciphertext -> (access token, fingerprint); never logged or shown.
        self._opened: dict[str, tuple[str, str]] = {}

    async def token(
        self, user_id: str, now: datetime, conn: Connection | None = None
    ) -> Token | None:
        """A usable access token for the user, or None (missing, expiring, refused); read on
        `conn` when given (inside the caller's transaction)."""
        if conn is None:
            async with self._pool.acquire() as own:
                cached = await token_store.cached_token(own, user_id)
        else:
            cached = await token_store.cached_token(conn, user_id)
        return self.usable(cached, now)

    async def read_many(self, conn: Connection, user_ids: Iterable[str]) -> dict[str, CachedToken]:
        """The cached tokens of these users in one query (a claimed batch's), to be opened
        with `usable` when each job calls AMC."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}
        return await token_store.cached_tokens(conn, wanted)

    def usable(self, cached: CachedToken | None, now: datetime) -> Token | None:
        """The token of a cached row if it may be sent now (not expiring, not refused)."""
        if cached is None or self._keys is None:
            return None
        if not failure_policy.token_usable(cached.expires_at, cached.invalid, now, self._margin_s):
            return None
        opened = self._opened.get(cached.ciphertext)
        if opened is None:
            try:
                value = self._keys.decrypt(cached.ciphertext)
            except DecryptionError:
                return None
            opened = (value, token_fingerprint(value))
            if len(self._opened) >= _OPENED_MAX:
                # Oldest first: tokens replaced long ago go before today's.
                del self._opened[next(iter(self._opened))]
            self._opened[cached.ciphertext] = opened
        return Token(opened[0], cached.issued_at, opened[1])
