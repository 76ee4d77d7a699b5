"""SQL against the poller's own schema: executions, cached tokens, outstanding token requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from shared.contract import ExecutionStatus, Origin, OriginKind, WorkflowRun
from shared.outbox import Connection

# Stages: which loop owns a live row next.
SUBMIT, POLL, DOWNLOAD, CANCEL, DONE = "submit", "poll", "download", "cancel", "done"

_UPDATABLE = frozenset(
    {
        "status",
        "stage",
        "waiting_token",
        "next_action_at",
        "failures",
        "poll_count",
        "cancel_requested",
        "cancel_kind",
        "amc_execution_id",
        "amc_status",
        "submit_intent_at",
        "submitted_at",
        "amc_finished_seen_at",
        "result_uri",
        "result_rows",
        "result_bytes",
        "error_code",
        "error_message",
        "error_retryable",
        "completed_at",
        "waiting_token_since",
        "auth_failures",
        "url_refreshes",
        "workflow_version",
        "waiting_reason",
    }
)


@dataclass(frozen=True)
class ExecRow:
    execution_id: UUID
    origin: Origin
    attempt: int
    user_id: str
    instance_id: str
    run: WorkflowRun
    status: ExecutionStatus
    stage: str
    waiting_token: bool
    failures: int
    poll_count: int
    cancel_requested: bool
    cancel_kind: str | None
    amc_execution_id: str | None
    amc_status: str | None
    submit_intent_at: datetime | None
    submitted_at: datetime | None
    amc_finished_seen_at: datetime | None
    next_action_at: datetime
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    result_uri: str | None
    result_rows: int | None
    result_bytes: int | None
    error_code: str | None
    error_message: str | None
    error_retryable: bool | None
    # Since when the row waits for a token (None while it does not): the "token wait" span.
    waiting_token_since: datetime | None = None
    auth_failures: int = 0
    url_refreshes: int = 0
    workflow_version: int | None = None
    # Why a QUEUED row is held back (the instance's daily cap is used up); None otherwise.
    waiting_reason: str | None = None
    # A scheduled run's fire time (schedule.due); None for other origins.
    fire_time: datetime | None = None
    # W3C carrier of the span that created the row (the request's CONSUMER span): background
    # jobs for the row continue this trace. Never logged or shown (it is only ids, but noise).
    trace_context: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, r: asyncpg.Record) -> ExecRow:
        return cls(
            execution_id=r["execution_id"],
            origin=Origin(kind=OriginKind(r["origin_kind"]), id=r["origin_id"]),
            attempt=r["attempt"],
            user_id=r["user_id"],
            instance_id=r["instance_id"],
            run=WorkflowRun.model_validate(r["run"]),
            status=ExecutionStatus(r["status"]),
            stage=r["stage"],
            waiting_token=r["waiting_token"],
            failures=r["failures"],
            poll_count=r["poll_count"],
            cancel_requested=r["cancel_requested"],
            cancel_kind=r["cancel_kind"],
            amc_execution_id=r["amc_execution_id"],
            amc_status=r["amc_status"],
            submit_intent_at=r["submit_intent_at"],
            submitted_at=r["submitted_at"],
            amc_finished_seen_at=r["amc_finished_seen_at"],
            next_action_at=r["next_action_at"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            completed_at=r["completed_at"],
            result_uri=r["result_uri"],
            result_rows=r["result_rows"],
            result_bytes=r["result_bytes"],
            error_code=r["error_code"],
            error_message=r["error_message"],
            error_retryable=r["error_retryable"],
            waiting_token_since=r["waiting_token_since"],
            auth_failures=r["auth_failures"],
            url_refreshes=r["url_refreshes"],
            workflow_version=r["workflow_version"],
            waiting_reason=r["waiting_reason"],
            fire_time=r["fire_time"],
            trace_context=dict(r["trace_context"] or {}),
        )


def _rows(records: list[asyncpg.Record]) -> list[ExecRow]:
    return [ExecRow.of(r) for r in records]


# --- requests ----------------------------------------------------------------------------


async def insert_execution(
    conn: Connection,
    *,
    execution_id: UUID,
    origin: Origin,
    attempt: int,
    request_event_id: UUID,
    run: WorkflowRun,
    status: ExecutionStatus,
    waiting_token: bool,
    trace_context: Mapping[str, str] | None = None,
    fire_time: datetime | None = None,
) -> ExecRow | None:
    """The new row, or None when this origin (and attempt) already has one.

    `trace_context` is the carrier of the span the request was handled in; the row's
    background jobs continue that trace."""
    record = await conn.fetchrow(
        """INSERT INTO executions (execution_id, origin_kind, origin_id, attempt,
                request_event_id, user_id, instance_id, workflow_id, run, status, stage,
                waiting_token, waiting_token_since, trace_context, fire_time)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'submit', $11,
                   CASE WHEN $11 THEN now() END, $12, $13)
           ON CONFLICT ON CONSTRAINT executions_one_per_origin DO NOTHING
           RETURNING *""",
        execution_id,
        origin.kind.value,
        origin.id,
        attempt,
        request_event_id,
        run.user_id,
        run.instance_id,
        run.workflow_label,
        run.model_dump(mode="json"),
        status.value,
        waiting_token,
        dict(trace_context or {}),
        fire_time,
    )
    return None if record is None else ExecRow.of(record)


# --- generic update ----------------------------------------------------------------------


async def update(
    conn: Connection,
    execution_id: UUID,
    owner: str | None,
    fields: dict[str, Any],
    *,
    release: bool = True,
) -> bool:
    """Change some columns; with an owner, only while that owner holds the lease.

    Returns False when the lease was lost (another replica took over): the caller must then
    drop what it learnt, since the new owner acts on its own view.
    """
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(fields)
    sets = [f"{name} = ${i + 3}" for i, name in enumerate(names)]
    sets.append("updated_at = now()")
    if release:
        sets += ["lease_owner = NULL", "lease_until = NULL"]
    result = await conn.execute(
        f"""UPDATE executions SET {", ".join(sets)}
            WHERE execution_id = $1 AND ($2::text IS NULL OR lease_owner = $2)""",
        execution_id,
        owner,
        *(fields[n] for n in names),
    )
    return result.endswith(" 1")


async def defer(
    conn: Connection,
    execution_id: UUID,
    owner: str,
    retry_in: timedelta,
    *,
    failures: int | None = None,
) -> None:
    """Keep the lease, but only until `retry_in` from now: then any replica may retry."""
    await conn.execute(
        """UPDATE executions SET lease_until = now() + $3::interval,
                                 failures = coalesce($4, failures), updated_at = now()
           WHERE execution_id = $1 AND lease_owner = $2""",
        execution_id,
        owner,
        retry_in,
        failures,
    )


async def lock(conn: Connection, execution_id: UUID) -> ExecRow | None:
    record = await conn.fetchrow(
        "SELECT * FROM executions WHERE execution_id = $1 FOR UPDATE", execution_id
    )
    return None if record is None else ExecRow.of(record)


# --- claiming work -----------------------------------------------------------------------


async def instances_with_queued(conn: Connection) -> list[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT instance_id FROM executions
           WHERE stage = 'submit' AND status = 'QUEUED' AND NOT waiting_token
             AND next_action_at <= now()"""
    )
    return [r["instance_id"] for r in rows]


@dataclass(frozen=True)
class Claim:
    rows: list[ExecRow]
    # The instance's executions for today are used up: what is still queued must wait.
    day_full: bool = False


async def claim_submissions(
    conn: Connection,
    instance_id: str,
    cap: int,
    owner: str,
    lease: timedelta,
    daily_cap: int = 0,
) -> Claim:
    """Under the instance's lock: take as many QUEUED rows as the running cap and the day's
    cap (0: none) leave room for, oldest first but one user at a time (round-robin by each
    user's queue position), and store the intent (SUBMITTING) before anything is sent."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('amc-poller-instance'), hashtext($1))", instance_id
    )
    in_flight = await conn.fetchval(
        """SELECT count(*) FROM executions
           WHERE instance_id = $1 AND status IN ('SUBMITTING', 'PENDING', 'RUNNING')""",
        instance_id,
    )
    room = cap - int(in_flight)
    if room <= 0:
        return Claim([])
    if daily_cap > 0:
        # Every intent today counts, refused or not: AMC does not say which of them it counts,
        # and holding back one run too many is cheaper than a refusal loop.
        used = await conn.fetchval(
            """SELECT count(*) FROM executions
               WHERE instance_id = $1 AND submit_intent_at >= date_trunc('day', now(), 'UTC')""",
            instance_id,
        )
        if int(used) >= daily_cap:
            return Claim([], day_full=True)
        room = min(room, daily_cap - int(used))
    records = await conn.fetch(
        """WITH queued AS (
               SELECT execution_id, created_at,
                      row_number() OVER (PARTITION BY user_id ORDER BY created_at) AS turn
               FROM executions
               WHERE instance_id = $1 AND stage = 'submit' AND status = 'QUEUED'
                 AND NOT waiting_token AND NOT cancel_requested AND next_action_at <= now()
           ), picked AS (
               SELECT e.execution_id FROM executions e JOIN queued q USING (execution_id)
               ORDER BY q.turn, q.created_at
               LIMIT $2
               FOR UPDATE OF e SKIP LOCKED
           )
           UPDATE executions e
           SET status = 'SUBMITTING', submit_intent_at = now(), lease_owner = $3,
               lease_until = now() + $4::interval, updated_at = now(), waiting_reason = NULL
           FROM picked WHERE e.execution_id = picked.execution_id
           RETURNING e.*""",
        instance_id,
        room,
        owner,
        lease,
    )
    return Claim(_rows(records))


async def hold_until_tomorrow(conn: Connection, instance_id: str, reason: str) -> int:
    """Move the instance's due QUEUED rows to the start of the next UTC day, with the reason
    shown to people; returns how many were held."""
    held = await conn.fetchval(
        """WITH held AS (
               UPDATE executions
               SET next_action_at = date_trunc('day', now(), 'UTC') + interval '1 day',
                   waiting_reason = $2, updated_at = now()
               WHERE instance_id = $1 AND stage = 'submit' AND status = 'QUEUED'
                 AND NOT waiting_token AND NOT cancel_requested AND next_action_at <= now()
               RETURNING 1
           ) SELECT count(*) FROM held""",
        instance_id,
        reason,
    )
    return int(held)


async def cancelled_while_queued(conn: Connection, limit: int) -> list[ExecRow]:
    """QUEUED rows whose cancel arrived while their submission was under way."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE stage = 'submit' AND status = 'QUEUED' AND cancel_requested
           LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return _rows(records)


async def claim_unresolved_submissions(
    conn: Connection, owner: str, lease: timedelta, limit: int
) -> list[ExecRow]:
    """SUBMITTING rows whose owner is gone (crash, lease expired) or who asked to re-check."""
    records = await conn.fetch(
        """UPDATE executions e SET lease_owner = $1, lease_until = now() + $2::interval,
                                   updated_at = now()
           FROM (SELECT execution_id FROM executions
                 WHERE stage = 'submit' AND status = 'SUBMITTING' AND NOT waiting_token
                   AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY submit_intent_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
           WHERE e.execution_id = due.execution_id
           RETURNING e.*""",
        owner,
        lease,
        limit,
    )
    return _rows(records)


async def claim_stage(
    conn: Connection, stage: str, owner: str, lease: timedelta, limit: int
) -> list[ExecRow]:
    records = await conn.fetch(
        """UPDATE executions e SET lease_owner = $2, lease_until = now() + $3::interval,
                                   updated_at = now()
           FROM (SELECT execution_id FROM executions
                 WHERE stage = $1 AND NOT waiting_token AND next_action_at <= now()
                   AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY next_action_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
           WHERE e.execution_id = due.execution_id
           RETURNING e.*""",
        stage,
        owner,
        lease,
        limit,
    )
    return _rows(records)


async def known_amc_ids(conn: Connection, candidates: list[str]) -> set[str]:
    """Which of these AMC executions already belong to one of our rows."""
    rows = await conn.fetch(
        "SELECT amc_execution_id FROM executions WHERE amc_execution_id = ANY($1::text[])",
        candidates,
    )
    return {r["amc_execution_id"] for r in rows}


async def live_by_status(conn: Connection) -> dict[str, int]:
    """Executions not yet finished, by status. Read through a partial index of live rows
    (stage <> 'done', see 0001): the cost follows the work in progress, not the history."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM executions WHERE stage <> 'done' GROUP BY status"
    )
    return {r["status"]: r["n"] for r in rows}


# --- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedToken:
    ciphertext: str
    expires_at: datetime
    invalid: bool


async def cached_token(conn: Connection, user_id: str) -> CachedToken | None:
    r = await conn.fetchrow(
        "SELECT access_token_encrypted, expires_at, invalid FROM tokens WHERE user_id = $1",
        user_id,
    )
    return None if r is None else CachedToken(r[0], r[1], r[2])


async def store_token(
    conn: Connection, user_id: str, ciphertext: str, expires_at: datetime
) -> bool:
    """Keep the token unless a later-expiring one is already cached (events may reorder)."""
    result = await conn.execute(
        """INSERT INTO tokens AS t (user_id, access_token_encrypted, expires_at)
           VALUES ($1, $2, $3)
           ON CONFLICT (user_id) DO UPDATE
               SET access_token_encrypted = excluded.access_token_encrypted,
                   expires_at = excluded.expires_at, invalid = false, updated_at = now()
               WHERE t.expires_at <= excluded.expires_at OR t.invalid""",
        user_id,
        ciphertext,
        expires_at,
    )
    return result.endswith(" 1")


async def invalidate_token(conn: Connection, user_id: str, ciphertext: str | None) -> None:
    """AMC refused the token: stop using it (unless a newer one replaced it meanwhile)."""
    await conn.execute(
        """UPDATE tokens SET invalid = true, updated_at = now()
           WHERE user_id = $1 AND ($2::text IS NULL OR access_token_encrypted = $2)""",
        user_id,
        ciphertext,
    )


async def open_token_request(conn: Connection, user_id: str) -> bool:
    """True if no request was outstanding for the user (the caller then emits one)."""
    created = await conn.fetchval(
        """INSERT INTO token_requests (user_id) VALUES ($1)
           ON CONFLICT (user_id) DO NOTHING RETURNING true""",
        user_id,
    )
    return bool(created)


async def close_token_request(conn: Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM token_requests WHERE user_id = $1", user_id)


async def stale_token_requests(conn: Connection, older_than: timedelta, limit: int) -> list[str]:
    rows = await conn.fetch(
        """UPDATE token_requests t SET requested_at = now(), times = t.times + 1
           FROM (SELECT user_id FROM token_requests WHERE requested_at < now() - $1::interval
                 ORDER BY requested_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
           WHERE t.user_id = due.user_id
           RETURNING t.user_id""",
        older_than,
        limit,
    )
    return [r["user_id"] for r in rows]


async def waiting_users_without_request(conn: Connection, limit: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT DISTINCT e.user_id FROM executions e
           WHERE e.waiting_token AND e.stage <> 'done'
             AND NOT EXISTS (SELECT 1 FROM token_requests t WHERE t.user_id = e.user_id)
           LIMIT $1""",
        limit,
    )
    return [r["user_id"] for r in rows]


async def waiting_for_token(conn: Connection, user_id: str) -> list[ExecRow]:
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE user_id = $1 AND waiting_token AND stage <> 'done'
           ORDER BY created_at FOR UPDATE""",
        user_id,
    )
    return _rows(records)


async def unserved_for_user(conn: Connection, user_id: str) -> list[ExecRow]:
    """Rows a dead grant leaves without a way forward: waiting for a token, or not yet sent."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE user_id = $1 AND stage <> 'done'
             AND (waiting_token OR status IN ('RECEIVED', 'WAITING_FOR_TOKEN', 'QUEUED'))
           ORDER BY created_at FOR UPDATE""",
        user_id,
    )
    return _rows(records)


# --- management API ----------------------------------------------------------------------


async def get_execution(conn: Connection, execution_id: UUID) -> ExecRow | None:
    r = await conn.fetchrow("SELECT * FROM executions WHERE execution_id = $1", execution_id)
    return None if r is None else ExecRow.of(r)


async def list_executions(
    conn: Connection,
    *,
    status: str | None,
    user_id: str | None,
    instance_id: str | None,
    origin_kind: str | None,
    origin_id: str | None,
    limit: int,
    offset: int,
    workflow_id: str | None = None,
) -> list[ExecRow]:
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::text IS NULL OR user_id = $2)
             AND ($3::text IS NULL OR instance_id = $3)
             AND ($4::text IS NULL OR origin_kind = $4)
             AND ($5::text IS NULL OR origin_id = $5)
             AND ($8::text IS NULL OR workflow_id = $8)
           ORDER BY created_at DESC, execution_id
           LIMIT $6 OFFSET $7""",
        status,
        user_id,
        instance_id,
        origin_kind,
        origin_id,
        limit,
        offset,
        workflow_id,
    )
    return _rows(records)


async def count_completed(conn: Connection, status: str, completed_after: datetime) -> int:
    found: int = await conn.fetchval(
        "SELECT count(*) FROM executions WHERE status = $1 AND completed_at > $2",
        status,
        completed_after,
    )
    return found


# --- keeping leases alive ----------------------------------------------------------------


async def renew_leases(
    conn: Connection, execution_ids: Sequence[UUID], owner: str, lease: timedelta
) -> int:
    """Extend the leases `owner` still holds on these rows; returns how many it extended.

    A lease already run out is not revived (another replica may have taken the row over),
    and one set further ahead (a deferred retry) is never shortened."""
    result = await conn.execute(
        """UPDATE executions SET lease_until = greatest(lease_until, now() + $3::interval)
           WHERE execution_id = ANY($1::uuid[]) AND lease_owner = $2 AND lease_until > now()""",
        list(execution_ids),
        owner,
        lease,
    )
    return int(result.split()[-1])
