"""Key rotation: batches of sealed tokens re-encrypted under the current key."""

from __future__ import annotations

from dataclasses import dataclass

from shared.outbox import Connection


@dataclass(frozen=True)
class Sealed:
    user_id: str
    refresh_token_enc: str
    access_token_enc: str | None


async def rotation_batch(
    conn: Connection, *, key_fp: str, after: str | None, limit: int
) -> list[Sealed]:
    """Rows not yet under the current key, in user order (resumable from `after`).

    Rows another transaction holds are skipped; a later pass picks them up.
    """
    rows = await conn.fetch(
        """SELECT user_id, refresh_token_enc, access_token_enc FROM tokens
           WHERE key_fp <> $1 AND ($2::text IS NULL OR user_id > $2)
           ORDER BY user_id LIMIT $3
           FOR UPDATE SKIP LOCKED""",
        key_fp,
        after,
        limit,
    )
    return [Sealed(r["user_id"], r["refresh_token_enc"], r["access_token_enc"]) for r in rows]


async def write_rotated(conn: Connection, rows: list[Sealed], key_fp: str) -> None:
    await conn.executemany(
        """UPDATE tokens SET refresh_token_enc = $2, access_token_enc = $3, key_fp = $4,
                  updated_at = now()
           WHERE user_id = $1""",
        [(r.user_id, r.refresh_token_enc, r.access_token_enc, key_fp) for r in rows],
    )


async def mark_undecryptable(conn: Connection, user_ids: list[str], reason: str) -> list[str]:
    """Mark active users whose tokens no key opens; returns those that changed status."""
    rows = await conn.fetch(
        """UPDATE tokens SET status = 'REAUTH_REQUIRED', last_error = $2,
                  refresh_requested_at = NULL, refresh_trace = NULL, updated_at = now()
           WHERE user_id = ANY($1::text[]) AND status = 'ACTIVE'
           RETURNING user_id""",
        user_ids,
        reason,
    )
    return [r["user_id"] for r in rows]


async def count_under_old_key(conn: Connection, key_fp: str) -> int:
    value: int = await conn.fetchval("SELECT count(*) FROM tokens WHERE key_fp <> $1", key_fp)
    return value
