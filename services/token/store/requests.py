"""On-demand refresh requests, inside the consumer's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from services.token.logic import StoredToken, TokenStatus
from shared.outbox import Connection


@dataclass(frozen=True)
class LockedToken:
    state: StoredToken
    access_token_enc: str | None


async def lock_token(conn: Connection, user_id: str) -> LockedToken | None:
    row = await conn.fetchrow(
        """SELECT status, access_token_enc, expires_at, last_refreshed_at, republished_at
           FROM tokens WHERE user_id = $1 FOR UPDATE""",
        user_id,
    )
    if row is None:
        return None
    state = StoredToken(
        status=TokenStatus(row["status"]),
        has_access_token=row["access_token_enc"] is not None,
        expires_at=row["expires_at"],
        last_refreshed_at=row["last_refreshed_at"],
        republished_at=row["republished_at"],
    )
    return LockedToken(state, row["access_token_enc"])


async def get_last_error(conn: Connection, user_id: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT last_error FROM tokens WHERE user_id = $1", user_id
    )
    return value


async def mark_republished(conn: Connection, user_id: str) -> None:
    await conn.execute(
        """UPDATE tokens SET republished_at = coalesce(republished_at, now()), updated_at = now()
           WHERE user_id = $1""",
        user_id,
    )


async def request_refresh(
    conn: Connection, user_id: str, channel: str, trace_context: dict[str, str] | None = None
) -> None:
    """Ask for a refresh; the NOTIFY wakes the refreshers once this transaction commits."""
    await conn.execute(
        """UPDATE tokens SET refresh_requested_at = coalesce(refresh_requested_at, now()),
                  refresh_trace = CASE WHEN refresh_requested_at IS NULL THEN $2::jsonb
                                       ELSE refresh_trace END,
                  updated_at = now()
           WHERE user_id = $1""",
        user_id,
        trace_context,
    )
    await conn.execute("SELECT pg_notify($1, $2)", channel, user_id)
