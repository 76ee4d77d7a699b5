"""SQL against the token schema. Every statement is short: no LWA call ever runs inside one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from services.token.logic import StoredToken, TokenStatus
from shared import ownership
from shared.clients.lwa import LwaRegion
from shared.outbox import Connection

# A claim no live replica holds: none, run out, or its owner's session ended (at once after a
# crash, shared/ownership.py).
_CLAIM_FREE = (
    f"(claim_expires_at IS NULL OR claim_expires_at < now() OR {ownership.gone('claim_key')})"
)
# Only the claim's owner, while it holds its owner lock, records the outcome.
_CLAIM_HELD = ownership.may_act("claim_key")
_ATTEMPT_DUE = "(next_attempt_at IS NULL OR next_attempt_at <= now())"


@dataclass(frozen=True)
class Claimed:
    """A token this replica may refresh until its lease ends; `claim_id` fences the write."""

    user_id: str
    claim_id: UUID
    refresh_token_enc: str
    consecutive_failures: int
    requested: bool
    # The trace of the request that asked for this refresh (empty for a proactive one).
    trace_context: dict[str, str] = field(default_factory=dict)
    region: LwaRegion = LwaRegion.NA  # where the user authorized: its LWA host refreshes


def _claimed(rows: list[asyncpg.Record]) -> list[Claimed]:
    return [
        Claimed(
            r["user_id"],
            r["claim_id"],
            r["refresh_token_enc"],
            r["consecutive_failures"],
            r["refresh_requested_at"] is not None,
            r["refresh_trace"] or {},
            LwaRegion(r["lwa_region"]),
        )
        for r in rows
    ]


def _claim_sql(condition: str, order: str, key: str) -> str:
    """Claims as replica $1 (at most $2 rows, lease $3 s) with owner lock `key`, which the
    claimer must hold (shared/ownership.py)."""
    return f"""
        WITH picked AS (
            SELECT user_id FROM tokens
            WHERE status = 'ACTIVE' AND {_CLAIM_FREE} AND {_ATTEMPT_DUE} AND {condition}
              AND {ownership.may_act(f"{key}::integer")}
            ORDER BY {order}
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE tokens t
        SET claim_id = gen_random_uuid(), claimed_by = $1, claim_key = {key}::integer,
            claim_expires_at = now() + make_interval(secs => $3), updated_at = now()
        FROM picked WHERE t.user_id = picked.user_id
        RETURNING t.user_id, t.claim_id, t.refresh_token_enc, t.consecutive_failures,
                  t.refresh_requested_at, t.refresh_trace, t.lwa_region"""


_CLAIM_DUE = _claim_sql(
    "(expires_at IS NULL OR expires_at <= now() + make_interval(secs => $4))",
    "expires_at NULLS FIRST",
    "$5",
)
_CLAIM_REQUESTED = _claim_sql("refresh_requested_at IS NOT NULL", "refresh_requested_at", "$4")


async def claim_due(
    conn: Connection,
    replica: str,
    limit: int,
    lease_s: float,
    buffer_s: float,
    key: int | None = None,
) -> list[Claimed]:
    """Claim active tokens expiring within the buffer (the proactive cycle); `key`: the
    replica's owner lock (None: the claim is held by its expiry alone)."""
    return _claimed(await conn.fetch(_CLAIM_DUE, replica, limit, lease_s, buffer_s, key))


async def claim_requested(
    conn: Connection, replica: str, limit: int, lease_s: float, key: int | None = None
) -> list[Claimed]:
    """Claim tokens with a pending on-demand request."""
    return _claimed(await conn.fetch(_CLAIM_REQUESTED, replica, limit, lease_s, key))


async def renew_claims(conn: Connection, claims: Sequence[tuple[str, UUID]], lease_s: float) -> int:
    """Extend these claims, given as (user id, claim id); returns how many it extended.

    A finished claim (its id cleared) or one already run out (another replica may have
    claimed the row since) is left alone."""
    result = await conn.execute(
        f"""UPDATE tokens t SET claim_expires_at = now() + make_interval(secs => $3)
            FROM unnest($1::text[], $2::uuid[]) AS v(user_id, claim_id)
            WHERE t.user_id = v.user_id AND t.claim_id = v.claim_id
              AND t.claim_expires_at > now() AND {ownership.may_act("t.claim_key")}""",
        [user_id for user_id, _ in claims],
        [claim_id for _, claim_id in claims],
        lease_s,
    )
    return int(result.split()[-1])


# What ends a claim, whatever its outcome: the row is free for the next cycle or replica.
_RELEASE = (
    "claim_id = NULL, claimed_by = NULL, claim_expires_at = NULL, claim_key = NULL, "
    "updated_at = now()"
)


@dataclass(frozen=True)
class Grant:
    """A refreshed grant, sealed under the storage key, for the claim it answers."""

    claim: Claimed
    refresh_token_enc: str
    access_token_enc: str
    expires_at: datetime


async def finish_successes(conn: Connection, grants: list[Grant], key_fp: str) -> set[str]:
    """Store refreshed grants in one statement; returns the users stored.

    A grant whose claim was lost (lease expired or owner session ended and taken over, or
    the user re-registered) is not stored: what the newer writer stored wins.
    """
    rows = await conn.fetch(
        f"""UPDATE tokens t SET refresh_token_enc = v.refresh_enc, access_token_enc = v.access_enc,
                  expires_at = v.expires_at, key_fp = $6, status = 'ACTIVE',
                  last_refreshed_at = now(), republished_at = NULL, consecutive_failures = 0,
                  last_error = NULL, next_attempt_at = NULL,
                  refresh_requested_at = NULL, refresh_trace = NULL, {_RELEASE}
           FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])
                AS v(user_id, claim_id, refresh_enc, access_enc, expires_at)
           WHERE t.user_id = v.user_id AND t.claim_id = v.claim_id
             AND {ownership.may_act("t.claim_key")}
           RETURNING t.user_id""",
        [g.claim.user_id for g in grants],
        [g.claim.claim_id for g in grants],
        [g.refresh_token_enc for g in grants],
        [g.access_token_enc for g in grants],
        [g.expires_at for g in grants],
        key_fp,
    )
    return {r["user_id"] for r in rows}


async def _finish(conn: Connection, claim: Claimed, changes: str, *args: object) -> bool:
    """Apply `changes` (SET items; their parameters from $3 on) to the claimed row and release
    it. A lost claim (run out, its owner's session ended and taken over, or the user
    re-registered) changes nothing."""
    done = await conn.fetchval(
        f"""UPDATE tokens SET {changes}, {_RELEASE}
            WHERE user_id = $1 AND claim_id = $2 AND {_CLAIM_HELD}
            RETURNING true""",
        claim.user_id,
        claim.claim_id,
        *args,
    )
    return bool(done)


async def finish_reauth(conn: Connection, claim: Claimed, reason: str) -> bool:
    return await _finish(
        conn,
        claim,
        """status = 'REAUTH_REQUIRED', last_error = $3,
           consecutive_failures = consecutive_failures + 1, next_attempt_at = NULL,
           refresh_requested_at = NULL, refresh_trace = NULL""",
        reason,
    )


async def finish_retry(
    conn: Connection,
    claim: Claimed,
    *,
    failures: int,
    next_attempt_in_s: float,
    error: str,
    answered: bool,
) -> bool:
    """Record a transient failure; `answered` clears a pending request that got its answer."""
    return await _finish(
        conn,
        claim,
        """consecutive_failures = $3, last_error = $4,
           next_attempt_at = now() + make_interval(secs => $5),
           refresh_requested_at = CASE WHEN $6 THEN NULL ELSE refresh_requested_at END""",
        failures,
        error,
        next_attempt_in_s,
        answered,
    )


# --- on-demand requests (inside the consumer's transaction) ------------------------------


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


# --- registration ------------------------------------------------------------------------


async def store_grant(
    conn: Connection,
    user_id: str,
    *,
    refresh_token_enc: str,
    access_token_enc: str | None,
    expires_at: datetime | None,
    key_fp: str,
    region: LwaRegion = LwaRegion.NA,
) -> bool:
    """Insert or replace a user's grant (a new authorization); True when the user is new.

    Any claim in flight is voided, so a refresh of the replaced grant cannot overwrite it.
    With no access token, a refresh is requested at once.
    """
    created: bool = await conn.fetchval(
        """INSERT INTO tokens AS t (user_id, refresh_token_enc, access_token_enc, expires_at,
                                    key_fp, last_refreshed_at, refresh_requested_at,
                                    lwa_region)
           VALUES ($1, $2, $3, $4, $5,
                   CASE WHEN $3::text IS NULL THEN NULL ELSE now() END,
                   CASE WHEN $3::text IS NULL THEN now() ELSE NULL END, $6)
           ON CONFLICT (user_id) DO UPDATE SET
               refresh_token_enc = EXCLUDED.refresh_token_enc,
               lwa_region = EXCLUDED.lwa_region,
               access_token_enc = EXCLUDED.access_token_enc,
               expires_at = EXCLUDED.expires_at, key_fp = EXCLUDED.key_fp,
               status = 'ACTIVE', last_refreshed_at = EXCLUDED.last_refreshed_at,
               republished_at = NULL, consecutive_failures = 0, last_error = NULL,
               next_attempt_at = NULL, refresh_requested_at = EXCLUDED.refresh_requested_at,
               claim_id = NULL, claimed_by = NULL, claim_expires_at = NULL, claim_key = NULL,
               updated_at = now()
           RETURNING (xmax = 0)""",
        user_id,
        refresh_token_enc,
        access_token_enc,
        expires_at,
        key_fp,
        region.value,
    )
    return created


async def delete_token(conn: Connection, user_id: str) -> bool:
    deleted = await conn.fetchval("DELETE FROM tokens WHERE user_id = $1 RETURNING true", user_id)
    return bool(deleted)


# --- reading -----------------------------------------------------------------------------

_PUBLIC_COLUMNS = """user_id, status, expires_at, last_refreshed_at, consecutive_failures,
                     last_error, next_attempt_at, refresh_requested_at, claimed_by,
                     claim_expires_at, key_fp, created_at, updated_at, lwa_region"""


@dataclass(frozen=True, slots=True)
class TokenRow:
    """What may be shown of a token row (`_PUBLIC_COLUMNS`): its state, never the tokens."""

    user_id: str
    status: Literal["ACTIVE", "REAUTH_REQUIRED"]
    expires_at: datetime | None
    last_refreshed_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    next_attempt_at: datetime | None
    refresh_requested_at: datetime | None
    claimed_by: str | None
    claim_expires_at: datetime | None
    key_fp: str
    created_at: datetime
    updated_at: datetime
    region: LwaRegion  # where the user authorized: its LWA host refreshes

    @classmethod
    def of(cls, record: asyncpg.Record) -> TokenRow:
        fields = dict(record)
        region = LwaRegion(fields.pop("lwa_region"))
        return cls(**fields, region=region)


async def get_token(conn: Connection, user_id: str) -> TokenRow | None:
    row = await conn.fetchrow(f"SELECT {_PUBLIC_COLUMNS} FROM tokens WHERE user_id = $1", user_id)
    return TokenRow.of(row) if row is not None else None


async def list_tokens(
    conn: Connection, *, limit: int, after: str | None, status: str | None
) -> list[TokenRow]:
    rows = await conn.fetch(
        f"""SELECT {_PUBLIC_COLUMNS} FROM tokens
            WHERE ($2::text IS NULL OR user_id > $2) AND ($3::text IS NULL OR status = $3)
            ORDER BY user_id LIMIT $1""",
        limit,
        after,
        status,
    )
    return [TokenRow.of(r) for r in rows]


async def summary(conn: Connection, *, buffer_s: float, key_fp: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE status = 'ACTIVE') AS active,
                  count(*) FILTER (WHERE status = 'REAUTH_REQUIRED') AS reauth_required,
                  count(*) FILTER (WHERE status = 'ACTIVE' AND (expires_at IS NULL
                      OR expires_at <= now() + make_interval(secs => $1))) AS due,
                  count(*) FILTER (WHERE status = 'ACTIVE' AND expires_at <= now()) AS expired,
                  count(*) FILTER (WHERE consecutive_failures > 0 AND status = 'ACTIVE')
                      AS failing,
                  count(*) FILTER (WHERE refresh_requested_at IS NOT NULL) AS requested,
                  count(*) FILTER (WHERE claim_expires_at > now()) AS claimed,
                  count(*) FILTER (WHERE key_fp <> $2) AS under_old_key,
                  min(expires_at) FILTER (WHERE status = 'ACTIVE') AS next_expiry
           FROM tokens""",
        buffer_s,
        key_fp,
    )
    assert row is not None
    return dict(row)


# --- key rotation ------------------------------------------------------------------------


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


async def count_by_state(conn: Connection) -> dict[str, int]:
    """Tokens per state as `amc_tokens` reports them (EXPIRED: active, access token past)."""
    rows = await conn.fetch(
        """SELECT CASE WHEN status = 'ACTIVE' AND (expires_at IS NULL OR expires_at <= now())
                       THEN 'EXPIRED' ELSE status END AS state,
                  count(*) AS n
           FROM tokens GROUP BY 1"""
    )
    return {r["state"]: r["n"] for r in rows}
