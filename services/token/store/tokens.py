"""Registration of a user's grant, and reading tokens for the API and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from shared import ownership
from shared.clients.lwa import LwaRegion
from shared.outbox import Connection


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

# A claim is in force while its lease runs and its owner lives: a killed replica's claim
# is free at once (shared/ownership.py), and is shown so, not until its lease runs out.
_CLAIM_IN_FORCE = f"(claim_expires_at > now() AND {ownership.may_act('claim_key')})"

_PUBLIC_COLUMNS = f"""user_id, status, expires_at, last_refreshed_at, consecutive_failures,
                     last_error, next_attempt_at, refresh_requested_at, claimed_by,
                     claim_expires_at, {_CLAIM_IN_FORCE} AS claim_held, key_fp, created_at,
                     updated_at, lwa_region"""


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
    claim_held: bool  # the claim is in force: its lease runs and its owner lives
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
        f"""SELECT count(*) AS total,
                  count(*) FILTER (WHERE status = 'ACTIVE') AS active,
                  count(*) FILTER (WHERE status = 'REAUTH_REQUIRED') AS reauth_required,
                  count(*) FILTER (WHERE status = 'ACTIVE' AND (expires_at IS NULL
                      OR expires_at <= now() + make_interval(secs => $1))) AS due,
                  count(*) FILTER (WHERE status = 'ACTIVE' AND expires_at <= now()) AS expired,
                  count(*) FILTER (WHERE consecutive_failures > 0 AND status = 'ACTIVE')
                      AS failing,
                  count(*) FILTER (WHERE refresh_requested_at IS NOT NULL) AS requested,
                  count(*) FILTER (WHERE {_CLAIM_IN_FORCE}) AS claimed,
                  count(*) FILTER (WHERE key_fp <> $2) AS under_old_key,
                  min(expires_at) FILTER (WHERE status = 'ACTIVE') AS next_expiry
           FROM tokens""",
        buffer_s,
        key_fp,
    )
    assert row is not None
    return dict(row)


async def count_by_state(conn: Connection) -> dict[str, int]:
    """Tokens per state as `amc_tokens` reports them (EXPIRED: active, access token past)."""
    rows = await conn.fetch(
        """SELECT CASE WHEN status = 'ACTIVE' AND (expires_at IS NULL OR expires_at <= now())
                       THEN 'EXPIRED' ELSE status END AS state,
                  count(*) AS n
           FROM tokens GROUP BY 1"""
    )
    return {r["state"]: r["n"] for r in rows}
