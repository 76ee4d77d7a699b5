"""SQL for the poller's cached tokens, its open token requests, and the runs waiting on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.poller.rows import ExecRow, exec_rows
from shared.db.status import rows_affected
from shared.outbox import Connection


@dataclass(frozen=True)
class CachedToken:
    ciphertext: str
    expires_at: datetime
    invalid: bool
    fingerprint: str | None
    # When LWA issued it (token.refreshed's issued_at), else when it reached the poller.
    issued_at: datetime


async def cached_token(conn: Connection, user_id: str) -> CachedToken | None:
    r = await conn.fetchrow(
        """SELECT access_token_encrypted, expires_at, invalid, fingerprint,
                  coalesce(issued_at, updated_at)
           FROM tokens WHERE user_id = $1""",
        user_id,
    )
    return None if r is None else CachedToken(r[0], r[1], r[2], r[3], r[4])


async def cached_tokens(conn: Connection, user_ids: list[str]) -> dict[str, CachedToken]:
    """`cached_token` of several users in one round trip (those with none are left out)."""
    rows = await conn.fetch(
        """SELECT user_id, access_token_encrypted, expires_at, invalid, fingerprint,
                  coalesce(issued_at, updated_at)
           FROM tokens WHERE user_id = ANY($1::text[])""",
        user_ids,
    )
    return {r[0]: CachedToken(r[1], r[2], r[3], r[4], r[5]) for r in rows}


async def store_token(
    conn: Connection,
    user_id: str,
    ciphertext: str,
    expires_at: datetime,
    fingerprint: str,
    issued_at: datetime | None = None,
) -> bool:
    """Keep the token unless a later-expiring one is already cached (events may reorder).
    The refused token sent again (an answer to an older request) stays refused."""
    result = await conn.execute(
        """INSERT INTO tokens AS t (user_id, access_token_encrypted, expires_at, fingerprint,
                                   issued_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE
               SET access_token_encrypted = excluded.access_token_encrypted,
                   expires_at = excluded.expires_at, fingerprint = excluded.fingerprint,
                   issued_at = excluded.issued_at,
                   invalid = t.invalid AND t.fingerprint IS NOT DISTINCT FROM excluded.fingerprint,
                   updated_at = now()
               WHERE t.expires_at <= excluded.expires_at OR t.invalid""",
        user_id,
        ciphertext,
        expires_at,
        fingerprint,
        issued_at,
    )
    return rows_affected(result) == 1


async def invalidate_token(conn: Connection, user_id: str, fingerprint: str | None) -> None:
    """AMC refused the token: stop using it (unless a newer one replaced it meanwhile)."""
    await conn.execute(
        """UPDATE tokens SET invalid = true, updated_at = now()
           WHERE user_id = $1 AND ($2::text IS NULL OR fingerprint = $2)""",
        user_id,
        fingerprint,
    )


@dataclass(frozen=True)
class Opened:
    """A token request to send, naming the refused token (None: no token was refused)."""

    refused_fp: str | None


async def open_token_request(
    conn: Connection, user_id: str, refused_fp: str | None
) -> Opened | None:
    """The request the caller should emit, or None when one is outstanding that will do.
    Without `refused_fp`, a cached token AMC refused is named (a run that merely found no
    usable token would otherwise have the token service send that very token back)."""
    row = await conn.fetchrow(
        """INSERT INTO token_requests AS t (user_id, refused_fp)
           VALUES ($1, coalesce($2, (SELECT fingerprint FROM tokens
                                     WHERE user_id = $1 AND invalid)))
           ON CONFLICT (user_id) DO UPDATE
               SET refused_fp = excluded.refused_fp, requested_at = now(), times = t.times + 1
               WHERE excluded.refused_fp IS NOT NULL
                 AND t.refused_fp IS DISTINCT FROM excluded.refused_fp
           RETURNING t.refused_fp""",
        user_id,
        refused_fp,
    )
    return None if row is None else Opened(row["refused_fp"])


async def close_token_request(conn: Connection, user_id: str, fingerprint: str | None) -> None:
    """A token arrived: the request is answered, unless what arrived is the token it names
    as refused (a reply to an earlier request crossing ours)."""
    await conn.execute(
        """DELETE FROM token_requests
           WHERE user_id = $1 AND ($2::text IS NULL OR refused_fp IS DISTINCT FROM $2)""",
        user_id,
        fingerprint,
    )


async def stale_token_requests(
    conn: Connection, older_than: timedelta, limit: int
) -> list[tuple[str, str | None]]:
    """Requests unanswered for too long, as (user, refused token), marked as sent again."""
    rows = await conn.fetch(
        """UPDATE token_requests t SET requested_at = now(), times = t.times + 1
           FROM (SELECT user_id FROM token_requests WHERE requested_at < now() - $1::interval
                 ORDER BY requested_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
           WHERE t.user_id = due.user_id
           RETURNING t.user_id, t.refused_fp""",
        older_than,
        limit,
    )
    return [(r["user_id"], r["refused_fp"]) for r in rows]


async def waiting_users_without_request(conn: Connection, limit: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT e.user_id FROM executions e
           WHERE e.waiting_token AND e.stage <> 'done'
             AND NOT EXISTS (SELECT 1 FROM token_requests t WHERE t.user_id = e.user_id)
           LIMIT $1""",
        limit,
    )
    return [r["user_id"] for r in rows]


async def waiting_for_token(conn: Connection, user_id: str, fingerprint: str) -> list[ExecRow]:
    """The user's rows waiting for a token that `fingerprint` can serve: not the one AMC
    refused them."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE user_id = $1 AND waiting_token AND stage <> 'done'
             AND refused_token_fp IS DISTINCT FROM $2
           ORDER BY created_at FOR UPDATE""",
        user_id,
        fingerprint,
    )
    return exec_rows(records)


async def refused_waits_past(conn: Connection, waited: timedelta, limit: int) -> list[ExecRow]:
    """Rows AMC refused a token for that have waited longer than `waited` for a newer one."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE waiting_token AND stage <> 'done' AND refused_token_fp IS NOT NULL
             AND waiting_token_since < now() - $1::interval
           ORDER BY waiting_token_since LIMIT $2 FOR UPDATE SKIP LOCKED""",
        waited,
        limit,
    )
    return exec_rows(records)


async def unserved_for_user(conn: Connection, user_id: str) -> list[ExecRow]:
    """Rows a dead grant leaves without a way forward: waiting for a token, or not yet sent."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE user_id = $1 AND stage <> 'done'
             AND (waiting_token OR status IN ('RECEIVED', 'WAITING_FOR_TOKEN', 'QUEUED'))
           ORDER BY created_at FOR UPDATE""",
        user_id,
    )
    return exec_rows(records)
