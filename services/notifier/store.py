"""SQL against the notifier's own schema (rules, deliveries)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.notifier.logic import Message, RuleFilter, Severity
from shared import ownership
from shared.outbox import Connection

DELIVERY_STATUSES = ("PENDING", "SENT", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class RuleRow:
    id: UUID
    name: str
    channel: str
    url_redacted: str
    url_encrypted: str
    filter: RuleFilter
    created_at: datetime

    @classmethod
    def of(cls, r: asyncpg.Record) -> RuleRow:
        return cls(
            id=r["id"],
            name=r["name"],
            channel=r["channel"],
            url_redacted=r["url_redacted"],
            url_encrypted=r["url_encrypted"],
            filter=RuleFilter.model_validate(json.loads(r["filter"])),
            created_at=r["created_at"],
        )


@dataclass(frozen=True)
class DeliveryRow:
    event_id: UUID
    rule_id: UUID
    rule_name: str
    topic: str
    event_type: str
    channel: str
    title: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, r: asyncpg.Record) -> DeliveryRow:
        return cls(**{f: r[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Claimed:
    """A delivery this replica holds until its lease ends, with what it needs to send it."""

    event_id: UUID
    rule_id: UUID
    claim_id: UUID
    channel: str
    url_encrypted: str
    message: Message
    attempts: int


_RULE_COLUMNS = "id, name, channel, url_redacted, url_encrypted, filter, created_at"


async def add_rule(
    conn: Connection,
    *,
    name: str,
    channel: str,
    url_redacted: str,
    url_encrypted: str,
    rule_filter: RuleFilter,
) -> RuleRow:
    row = await conn.fetchrow(
        f"""INSERT INTO rules (id, name, channel, url_redacted, url_encrypted, filter)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING {_RULE_COLUMNS}""",
        uuid4(),
        name,
        channel,
        url_redacted,
        url_encrypted,
        rule_filter.model_dump_json(),
    )
    assert row is not None
    return RuleRow.of(row)


async def active_rules(conn: Connection) -> list[RuleRow]:
    rows = await conn.fetch(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE removed_at IS NULL ORDER BY created_at, id"
    )
    return [RuleRow.of(r) for r in rows]


async def get_rule(conn: Connection, rule_id: UUID) -> RuleRow | None:
    row = await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE id = $1 AND removed_at IS NULL", rule_id
    )
    return RuleRow.of(row) if row is not None else None


async def remove_rule(conn: Connection, rule_id: UUID) -> bool:
    """Erase the rule's secret, keep its row for history, and cancel what it still owes."""
    removed = await conn.fetchval(
        """UPDATE rules SET removed_at = now(), url_encrypted = ''
           WHERE id = $1 AND removed_at IS NULL RETURNING true""",
        rule_id,
    )
    if removed:
        await conn.execute(
            """UPDATE deliveries SET status = 'CANCELLED', updated_at = now(),
                      last_error = coalesce(last_error, 'rule removed')
               WHERE rule_id = $1 AND status = 'PENDING'""",
            rule_id,
        )
    return bool(removed)


async def record_delivery(
    conn: Connection,
    *,
    event_id: UUID,
    rule: RuleRow,
    topic: str,
    event_type: str,
    message: Message,
) -> bool:
    """One pending delivery per (event, rule); a second one for the pair changes nothing."""
    inserted = await conn.fetchval(
        """INSERT INTO deliveries (event_id, rule_id, topic, event_type, channel, title, body,
                                   severity, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING')
           ON CONFLICT (event_id, rule_id) DO NOTHING RETURNING true""",
        event_id,
        rule.id,
        topic,
        event_type,
        rule.channel,
        message.title,
        message.body,
        message.severity.value,
    )
    return bool(inserted)


# Due: its time has come, or the replica that claimed it is gone (its lease may run on).
_DUE = f"(next_attempt_at <= now() OR {ownership.gone('claim_key')})"


async def claim_due(
    conn: Connection, *, limit: int, lease_s: float, owner_key: int | None = None
) -> list[Claimed]:
    """Claim due deliveries: each counts one attempt and is hidden from other senders for
    `lease_s` (the lease), or until the claimer's owner lock `owner_key` is gone
    (shared/ownership.py): a sender that dies leaves them due again at once. A claimer with
    a key claims only while it holds that lock."""
    claim_id = uuid4()
    rows = await conn.fetch(
        f"""WITH due AS (
               SELECT event_id, rule_id FROM deliveries
               WHERE status = 'PENDING' AND {_DUE} AND {ownership.may_act("$4::integer")}
               ORDER BY next_attempt_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED
           )
           UPDATE deliveries d
           SET attempts = d.attempts + 1, claim_id = $2, claim_key = $4, updated_at = now(),
               next_attempt_at = now() + make_interval(secs => $3)
           FROM due, rules r
           WHERE d.event_id = due.event_id AND d.rule_id = due.rule_id AND r.id = d.rule_id
           RETURNING d.event_id, d.rule_id, d.channel, d.title, d.body, d.severity,
                     d.attempts, r.url_encrypted""",
        limit,
        claim_id,
        lease_s,
        owner_key,
    )
    return [
        Claimed(
            event_id=r["event_id"],
            rule_id=r["rule_id"],
            claim_id=claim_id,
            channel=r["channel"],
            url_encrypted=r["url_encrypted"],
            message=Message(r["title"], r["body"], Severity(r["severity"])),
            attempts=r["attempts"],
        )
        for r in rows
    ]


# An outcome is recorded only under the claim it was sent under, and only while the
# claimer's owner lock lives: once it is gone, another replica may already be sending.
_MINE = (
    "event_id = $1 AND rule_id = $2 AND claim_id = $3 AND status = 'PENDING' AND "
    + ownership.may_act("claim_key")
)


async def mark_sent(conn: Connection, claimed: Claimed) -> bool:
    done = await conn.fetchval(
        f"""UPDATE deliveries SET status = 'SENT', sent_at = now(), updated_at = now(),
                  claim_id = NULL, claim_key = NULL
           WHERE {_MINE}
           RETURNING true""",
        claimed.event_id,
        claimed.rule_id,
        claimed.claim_id,
    )
    return bool(done)


async def mark_failed(
    conn: Connection, claimed: Claimed, *, error: str, retry_in_s: float | None
) -> bool:
    """Record a failed try: due again in `retry_in_s`, or FAILED for good when None."""
    done = await conn.fetchval(
        f"""UPDATE deliveries
           SET last_error = $4, updated_at = now(), claim_id = NULL, claim_key = NULL,
               status = CASE WHEN $5::float8 IS NULL THEN 'FAILED' ELSE 'PENDING' END,
               next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at
                                      ELSE now() + make_interval(secs => $5::float8) END
           WHERE {_MINE}
           RETURNING true""",
        claimed.event_id,
        claimed.rule_id,
        claimed.claim_id,
        error,
        retry_in_s,
    )
    return bool(done)


async def list_deliveries(
    conn: Connection,
    *,
    status: str | None,
    rule_id: UUID | None,
    event_id: UUID | None,
    limit: int,
) -> list[DeliveryRow]:
    rows = await conn.fetch(
        """SELECT d.event_id, d.rule_id, r.name AS rule_name, d.topic, d.event_type,
                  d.channel, d.title, d.status, d.attempts, d.next_attempt_at, d.last_error,
                  d.created_at, d.sent_at
           FROM deliveries d JOIN rules r ON r.id = d.rule_id
           WHERE ($1::text IS NULL OR d.status = $1)
             AND ($2::uuid IS NULL OR d.rule_id = $2)
             AND ($3::uuid IS NULL OR d.event_id = $3)
           ORDER BY d.created_at DESC, d.event_id, d.rule_id
           LIMIT $4""",
        status,
        rule_id,
        event_id,
        limit,
    )
    return [DeliveryRow.of(r) for r in rows]


async def waiting_by_channel(conn: Connection) -> list[dict[str, Any]]:
    """Pending deliveries per channel, and how many of them have failed at least once."""
    rows = await conn.fetch(
        """SELECT channel, count(*) AS pending,
                  count(*) FILTER (WHERE last_error IS NOT NULL) AS failing
           FROM deliveries WHERE status = 'PENDING' GROUP BY channel"""
    )
    return [dict(r) for r in rows]
