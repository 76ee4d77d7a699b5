"""SQL against the poller's own schema: executions, cached tokens, outstanding token requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.poller import logic
from services.poller.rows import ExecRow
from shared.contract import ExecutionStatus, Origin, WorkflowRun
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
        "url_refreshes",
        "workflow_version",
        "waiting_reason",
        "refused_token_fp",
        "refused_at",
    }
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
    share_group: str | None = None,
    daily_share: int | None = None,
    fire_time: datetime | None = None,
) -> ExecRow | None:
    """The new row, or None when this origin (and attempt) already has one.

    `trace_context` is the carrier of the span the request was handled in; the row's
    background jobs continue that trace. `share_group` (a collection's id) and `daily_share`
    bound how many of the group's runs are submitted per UTC day."""
    record = await conn.fetchrow(
        """INSERT INTO executions (execution_id, origin_kind, origin_id, attempt,
                request_event_id, user_id, instance_id, workflow_id, run, status, stage,
                waiting_token, waiting_token_since, trace_context, share_group, daily_share,
                fire_time)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'submit', $11,
                   CASE WHEN $11 THEN now() END, $12, $13, $14, $15)
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
        share_group,
        daily_share,
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
    # Intents at the instance today, this claim's included.
    used_today: int = 0
    # Collection weeks held for the next day because their collection's share is spent.
    share_held: int = 0


# The start of the UTC day: the poller's day for AMC's cap (Amazon does not publish when AMC's
# day starts).
_TODAY = "date_trunc('day', now(), 'UTC')"


def _dry_run(t: str = "") -> str:
    """A run that only asks AMC for its verdict (RunOptions.dry_run): AMC's dryRun runs
    "without consuming quotas", so the day's cap neither counts nor holds it
    (claim_dry_runs takes it)."""
    return f"coalesce(({t}run->'options'->>'dry_run')::boolean, false)"


def _due(t: str = "") -> str:
    """A QUEUED row, dry run or not, the submitter may take now (`t`: the table's alias with
    its dot)."""
    return (
        f"{t}stage = 'submit' AND {t}status = 'QUEUED' AND NOT {t}waiting_token"
        f" AND NOT {t}cancel_requested AND {t}next_action_at <= now()"
    )


def _due_queued(t: str = "") -> str:
    """A QUEUED run the day's cap counts that the submitter may take now."""
    return f"{_due(t)} AND NOT {_dry_run(t)}"


async def claim_submissions(
    conn: Connection,
    instance_id: str,
    cap: int,
    owner: str,
    lease: timedelta,
    daily_cap: int = 0,
) -> Claim:
    """Under the instance's lock: take as many QUEUED rows as the running cap and the day's
    cap (0: none) leave room for, and store the intent (SUBMITTING) before anything is sent.

    The day's cap is one budget for every run at the instance, spent by priority: scheduled
    and external runs before collection weeks, then oldest first but one user at a time
    (round-robin by each user's queue position). A collection week with a `daily_share` is
    taken only while its collection has submitted fewer than that today; the rest of its due
    weeks are held for the next UTC day with the reason. A share is a share of the cap: an
    instance without one (`daily_cap` 0) has none to share, and shares do not apply."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('amc-poller-instance'), hashtext($1))", instance_id
    )
    # Every intent today counts, refused or not: AMC does not say which of them it counts,
    # and holding back one run too many is cheaper than a refusal loop.
    used = await used_today(conn, instance_id)
    in_flight = await conn.fetchval(
        """SELECT count(*) FROM executions
           WHERE instance_id = $1 AND status IN ('SUBMITTING', 'PENDING', 'RUNNING')""",
        instance_id,
    )
    room = cap - int(in_flight)
    if daily_cap > 0:
        if used >= daily_cap:
            return Claim([], day_full=True, used_today=used)
        room = min(room, daily_cap - used)
    records = []
    if room > 0:
        records = await conn.fetch(
            f"""WITH spent AS (
                   SELECT share_group, count(*) AS used FROM executions
                   WHERE instance_id = $1 AND share_group IS NOT NULL
                     AND submit_intent_at >= {_TODAY}
                   GROUP BY share_group
               ), queued AS (
                   SELECT e.execution_id, e.created_at, e.daily_share,
                          e.origin_kind = 'collection' AS deferrable,
                          row_number() OVER (
                              PARTITION BY e.user_id, e.origin_kind = 'collection'
                              ORDER BY e.created_at) AS turn,
                          row_number() OVER (
                              PARTITION BY e.share_group ORDER BY e.created_at) AS group_turn,
                          coalesce(s.used, 0) AS group_used
                   FROM executions e LEFT JOIN spent s USING (share_group)
                   WHERE e.instance_id = $1 AND {_due_queued("e.")}
               ), picked AS (
                   SELECT e.execution_id FROM executions e JOIN queued q USING (execution_id)
                   WHERE NOT $5 OR q.daily_share IS NULL
                      OR q.group_turn <= q.daily_share - q.group_used
                   ORDER BY q.deferrable, q.turn, q.created_at
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
            daily_cap > 0,
        )
    held = await _hold_spent_shares(conn, instance_id) if daily_cap > 0 else 0
    return Claim(_rows(records), used_today=used + len(records), share_held=held)


async def used_today(conn: Connection, instance_id: str) -> int:
    """Submission intents at the instance since 00:00 UTC."""
    used = await conn.fetchval(
        f"""SELECT count(*) FROM executions
            WHERE instance_id = $1 AND submit_intent_at >= {_TODAY} AND NOT {_dry_run()}""",
        instance_id,
    )
    return int(used)


async def _hold_spent_shares(conn: Connection, instance_id: str) -> int:
    """Move the due weeks of collections whose share of today is spent to the next UTC day,
    each with its collection's count; returns how many were held."""
    spent = await conn.fetch(
        f"""SELECT e.share_group, min(e.daily_share) AS share,
                   (SELECT count(*) FROM executions d
                    WHERE d.instance_id = $1 AND d.share_group = e.share_group
                      AND d.submit_intent_at >= {_TODAY}) AS used
            FROM executions e
            WHERE e.instance_id = $1 AND e.daily_share IS NOT NULL
              AND {_due_queued("e.")}
            GROUP BY e.share_group""",
        instance_id,
    )
    held = 0
    for group in spent:
        if group["used"] < group["share"]:
            continue
        held += await hold_until_tomorrow(
            conn,
            instance_id,
            logic.share_reason(group["share_group"], group["used"], group["share"]),
            share_group=group["share_group"],
        )
    return held


async def claim_dry_runs(
    conn: Connection, instance_id: str, cap: int, owner: str, lease: timedelta
) -> list[ExecRow]:
    """Under the instance's lock: take the due QUEUED dry runs the running cap leaves room
    for, whatever the day's cap, oldest first, and store the intent (SUBMITTING)."""
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
        return []
    records = await conn.fetch(
        f"""WITH picked AS (
               SELECT execution_id FROM executions
               WHERE instance_id = $1 AND {_due()} AND {_dry_run()}
               ORDER BY created_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED
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
    return _rows(records)


async def hold_until_tomorrow(
    conn: Connection, instance_id: str, reason: str, share_group: str | None = None
) -> int:
    """Move the instance's due QUEUED rows (only `share_group`'s, if given; dry runs excepted:
    the cap does not count them) to the start of the next UTC day, with the reason shown to
    people; returns how many were held."""
    held = await conn.fetchval(
        f"""WITH held AS (
               UPDATE executions
               SET next_action_at = {_TODAY} + interval '1 day',
                   waiting_reason = $2, updated_at = now()
               WHERE instance_id = $1 AND {_due_queued()}
                 AND ($3::text IS NULL OR share_group = $3)
               RETURNING 1
           ) SELECT count(*) FROM held""",
        instance_id,
        reason,
        share_group,
    )
    return int(held)


@dataclass(frozen=True)
class Today:
    """An instance's day so far, for people: what was submitted, what waits for tomorrow."""

    used: int
    used_by_kind: dict[str, int]
    waiting_for_tomorrow: int
    waiting_by_kind: dict[str, int]


async def instance_today(conn: Connection, instance_id: str) -> Today:
    rows = await conn.fetch(
        f"""SELECT origin_kind,
                   count(*) FILTER (WHERE submit_intent_at >= {_TODAY}) AS used,
                   count(*) FILTER (WHERE stage = 'submit' AND status = 'QUEUED'
                                      AND next_action_at >= {_TODAY} + interval '1 day')
                       AS waiting
            FROM executions
            WHERE instance_id = $1 AND NOT {_dry_run()}
              AND (submit_intent_at >= {_TODAY}
                   OR (stage = 'submit' AND status = 'QUEUED'))
            GROUP BY origin_kind""",
        instance_id,
    )
    used = {r["origin_kind"]: int(r["used"]) for r in rows if r["used"]}
    waiting = {r["origin_kind"]: int(r["waiting"]) for r in rows if r["waiting"]}
    return Today(sum(used.values()), used, sum(waiting.values()), waiting)


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
    return result.endswith(" 1")


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
    return _rows(records)


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


async def completed_per_day(conn: Connection, since: datetime) -> list[tuple[date, str, int]]:
    """(UTC day, status, how many) of the executions completed since `since`, in one pass
    over the completed_at index."""
    rows = await conn.fetch(
        """SELECT (completed_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n
           FROM executions WHERE completed_at >= $1
           GROUP BY 1, 2 ORDER BY 1, 2""",
        since,
    )
    return [(r["day"], r["status"], int(r["n"])) for r in rows]


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
