"""Claims of due and requested tokens, their leases, and the outcomes stored under them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from shared import ownership
from shared.clients.lwa import LwaRegion
from shared.db.status import rows_affected
from shared.outbox import Connection
from shared.ownership import Claimant

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
    conn: Connection, claimant: Claimant, limit: int, buffer_s: float
) -> list[Claimed]:
    """Claim active tokens expiring within the buffer (the proactive cycle)."""
    args = (claimant.name, limit, claimant.lease_s, buffer_s, claimant.key)
    return _claimed(await conn.fetch(_CLAIM_DUE, *args))


async def claim_requested(conn: Connection, claimant: Claimant, limit: int) -> list[Claimed]:
    """Claim tokens with a pending on-demand request."""
    args = (claimant.name, limit, claimant.lease_s, claimant.key)
    return _claimed(await conn.fetch(_CLAIM_REQUESTED, *args))


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
    return rows_affected(result)


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
