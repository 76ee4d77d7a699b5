"""The poller's token reader: the cached access token of a user, decrypted just before a call.

Tokens come from token.refreshed events into the poller's own table; this is the one place
that reads and decrypts them, so the AMC gateway only ever receives a Token to send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.poller import token_store
from services.poller.exchange import failure_policy
from shared.crypto import DecryptionError, KeyRing, token_fingerprint
from shared.outbox import Connection


class Token:
    """A decrypted access token and its fingerprint (what a refusal names, never the token)."""

    __slots__ = ("fingerprint", "issued_at", "value")

    def __init__(self, value: str, issued_at: datetime | None = None) -> None:
        self.value = value
        self.fingerprint = token_fingerprint(value)
        # When LWA issued it, else when the poller received it (None: not known).
        self.issued_at = issued_at

    def __repr__(self) -> str:
        return f"Token(fp={self.fingerprint})"


class TokenReader:
    def __init__(self, pool: asyncpg.Pool[Any], keys: KeyRing | None, margin_s: float) -> None:
        self._pool = pool
        self._keys = keys
        self._margin_s = margin_s

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
        if cached is None or self._keys is None:
            return None
        if not failure_policy.token_usable(cached.expires_at, cached.invalid, now, self._margin_s):
            return None
        try:
            return Token(self._keys.decrypt(cached.ciphertext), cached.issued_at)
        except DecryptionError:
            return None
