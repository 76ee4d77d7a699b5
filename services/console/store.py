"""SQL against the console's own schema: sessions, the audit log and pending OAuth states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clients.lwa import LwaRegion
from shared.outbox import Connection


@dataclass(frozen=True)
class Session:
    principal: str
    method: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    principal: str
    action: str
    target: str
    outcome: str
    detail: str | None


async def create_session(
    conn: Connection, id_hash: str, principal: str, method: str, csrf: str, ttl: timedelta
) -> None:
    # Expired sessions go on the way: sign-ins are rare enough that no sweeper loop is needed.
    await conn.execute("DELETE FROM sessions WHERE expires_at < now()")
    await conn.execute(
        """INSERT INTO sessions (id_hash, principal, method, csrf, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5::interval)""",
        id_hash,
        principal,
        method,
        csrf,
        ttl,
    )


async def get_session(conn: Connection, id_hash: str) -> Session | None:
    row = await conn.fetchrow(
        """SELECT principal, method, csrf, expires_at FROM sessions
           WHERE id_hash = $1 AND expires_at > now()""",
        id_hash,
    )
    return Session(**dict(row)) if row else None


async def delete_session(conn: Connection, id_hash: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE id_hash = $1", id_hash)


async def audit(
    conn: Connection, principal: str, action: str, target: str, outcome: str, detail: str | None
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (principal, action, target, outcome, detail)
           VALUES ($1, $2, $3, $4, $5)""",
        principal,
        action,
        target,
        outcome,
        detail,
    )


async def audit_page(conn: Connection, *, limit: int, offset: int) -> list[AuditEntry]:
    rows: list[Any] = await conn.fetch(
        "SELECT * FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2", limit, offset
    )
    return [AuditEntry(**dict(r)) for r in rows]


async def add_oauth_state(
    conn: Connection,
    state_hash: str,
    principal: str,
    user_id: str,
    ttl: timedelta,
    region: LwaRegion = LwaRegion.NA,
) -> None:
    await conn.execute("DELETE FROM oauth_states WHERE expires_at < now()")
    await conn.execute(
        """INSERT INTO oauth_states (state_hash, principal, user_id, expires_at, lwa_region)
           VALUES ($1, $2, $3, now() + $4::interval, $5)""",
        state_hash,
        principal,
        user_id,
        ttl,
        region.value,
    )


async def take_oauth_state(conn: Connection, state_hash: str) -> tuple[str, str, LwaRegion] | None:
    """The (principal, user_id, region) of a pending flow, consumed: a state works once."""
    row = await conn.fetchrow(
        """DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now()
           RETURNING principal, user_id, lwa_region""",
        state_hash,
    )
    return (row["principal"], row["user_id"], LwaRegion(row["lwa_region"])) if row else None


@dataclass(frozen=True)
class Replay:
    principal: str
    replayed_at: datetime
    times: int


async def replays_of(
    conn: Connection, letters: list[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Replay]:
    """The latest replay of each (letter id, failed_at), and how many there were."""
    if not letters:
        return {}
    rows: list[Any] = await conn.fetch(
        """SELECT DISTINCT ON (r.letter_id, r.failed_at) r.letter_id, r.failed_at, r.principal,
                  r.replayed_at, count(*) OVER (PARTITION BY r.letter_id, r.failed_at) AS times
           FROM dead_letter_replays r
           JOIN unnest($1::text[], $2::timestamptz[]) AS l(letter_id, failed_at)
             ON l.letter_id = r.letter_id AND l.failed_at = r.failed_at
           ORDER BY r.letter_id, r.failed_at, r.id DESC""",
        [i for i, _ in letters],
        [f for _, f in letters],
    )
    return {
        (r["letter_id"], r["failed_at"]): Replay(r["principal"], r["replayed_at"], r["times"])
        for r in rows
    }


async def lock_letter(conn: Connection, letter_id: str) -> None:
    """Serialise replays of one letter until the transaction ends: two operators pressing
    Replay at once must not both pass the "not replayed yet" check."""
    # The two-key form: its own key space, apart from the one-key locks of relays and
    # migrations in the same database.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('console.replay'), hashtext($1))", letter_id
    )


async def record_replay(
    conn: Connection, letter_id: str, failed_at: datetime, principal: str, forced: bool
) -> None:
    await conn.execute(
        """INSERT INTO dead_letter_replays (letter_id, failed_at, principal, forced)
           VALUES ($1, $2, $3, $4)""",
        letter_id,
        failed_at,
        principal,
        forced,
    )
