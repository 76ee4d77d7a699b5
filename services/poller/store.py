"""SQL against the poller's own schema: executions, cached tokens, outstanding token requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from services.poller.rows import ExecRow, exec_rows
from shared import ownership
from shared.contract import ExecutionStatus, Origin, WorkflowRun
from shared.db.status import rows_affected
from shared.outbox import Connection
from shared.ownership import Claimant

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
    """Change some columns; with an owner, only while that owner holds the lease and its
    owner lock (shared/ownership.py).

    Returns False when the lease was lost (another replica took over, or this replica's owner
    session ended): the caller must then drop what it learnt, since the row's next owner acts
    on its own view.
    """
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = list(fields)
    sets = [f"{name} = ${i + 3}" for i, name in enumerate(names)]
    sets.append("updated_at = now()")
    if release:
        sets += ["lease_owner = NULL", "lease_until = NULL", "lease_key = NULL"]
    result = await conn.execute(
        f"""UPDATE executions SET {", ".join(sets)}
            WHERE execution_id = $1
              AND ($2::text IS NULL OR (lease_owner = $2 AND {ownership.may_act("lease_key")}))""",
        execution_id,
        owner,
        *(fields[n] for n in names),
    )
    return rows_affected(result) == 1


@dataclass(frozen=True)
class PollSeen:
    """A poll that found the execution where it was: only its bookkeeping changes."""

    execution_id: UUID
    amc_status: str
    poll_count: int
    next_action_at: datetime


async def record_polls(conn: Connection, owner: str, polls: Sequence[PollSeen]) -> set[UUID]:
    """Store many such polls in one statement, each only while `owner` still holds its row
    (and releasing it, as `update` does); returns the rows written. Nothing is announced: the
    status did not change. A poll that also cleared failures or a refused token clears them
    here too, as the poll's own write would have."""
    records = await conn.fetch(
        f"""UPDATE executions e
            SET amc_status = p.amc_status, poll_count = p.poll_count,
                next_action_at = p.next_action_at, failures = 0, refused_token_fp = NULL,
                refused_at = NULL, updated_at = now(),
                lease_owner = NULL, lease_until = NULL, lease_key = NULL
            FROM unnest($2::uuid[], $3::text[], $4::int[], $5::timestamptz[])
                 AS p(execution_id, amc_status, poll_count, next_action_at)
            WHERE e.execution_id = p.execution_id AND e.lease_owner = $1
              AND {ownership.may_act("e.lease_key")}
            RETURNING e.execution_id""",
        owner,
        [p.execution_id for p in polls],
        [p.amc_status for p in polls],
        [p.poll_count for p in polls],
        [p.next_action_at for p in polls],
    )
    return {r["execution_id"] for r in records}


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
        f"""UPDATE executions SET lease_until = now() + $3::interval,
                                  failures = coalesce($4, failures), updated_at = now()
            WHERE execution_id = $1 AND lease_owner = $2 AND {ownership.may_act("lease_key")}""",
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


# --- claiming work (the daily cap's claims are claims.py) ---------------------------------

# A row no live owner holds: never claimed, its lease ran out, or its owner's session ended
# (shared/ownership.py: at once after a crash, without waiting for the lease).
_FREE = f"(lease_until IS NULL OR lease_until < now() OR {ownership.gone('lease_key')})"


async def cancelled_while_queued(conn: Connection, limit: int) -> list[ExecRow]:
    """QUEUED rows whose cancel arrived while their submission was under way."""
    records = await conn.fetch(
        """SELECT * FROM executions
           WHERE stage = 'submit' AND status = 'QUEUED' AND cancel_requested
           LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return exec_rows(records)


async def claim_unresolved_submissions(
    conn: Connection, claimant: Claimant, limit: int
) -> list[tuple[ExecRow, bool]]:
    """SUBMITTING rows whose owner is gone (crash, lease expired) or who asked to re-check,
    each with whether its owner's lock was gone (it may have died with its POST on the way
    to AMC). The claimant's owner lock (shared/ownership.py) must be held."""
    records = await conn.fetch(
        f"""UPDATE executions e SET lease_owner = $1, lease_until = now() + $2::interval,
                                    lease_key = $4, updated_at = now()
            FROM (SELECT execution_id, {ownership.gone("lease_key")} AS orphaned
                  FROM executions
                  WHERE stage = 'submit' AND status = 'SUBMITTING' AND NOT waiting_token
                    AND {_FREE} AND {ownership.may_act("$4::integer")}
                  ORDER BY submit_intent_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
            WHERE e.execution_id = due.execution_id
            RETURNING e.*, due.orphaned""",
        claimant.name,
        claimant.lease,
        limit,
        claimant.key,
    )
    return [(ExecRow.of(r), bool(r["orphaned"])) for r in records]


async def claim_stage(
    conn: Connection, stage: str, claimant: Claimant, limit: int
) -> list[ExecRow]:
    records = await conn.fetch(
        f"""UPDATE executions e SET lease_owner = $2, lease_until = now() + $3::interval,
                                    lease_key = $5, updated_at = now()
            FROM (SELECT execution_id FROM executions
                  WHERE stage = $1 AND NOT waiting_token AND next_action_at <= now()
                    AND {_FREE} AND {ownership.may_act("$5::integer")}
                  ORDER BY next_action_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
            WHERE e.execution_id = due.execution_id
            RETURNING e.*""",
        stage,
        claimant.name,
        claimant.lease,
        limit,
        claimant.key,
    )
    return exec_rows(records)


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
    return exec_rows(records)


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


# --- history ---------------------------------------------------------------------------


async def delete_finished(conn: Connection, created_before: datetime, limit: int) -> int:
    """Delete up to `limit` finished executions created before `created_before`; returns how
    many went. Read through the created_at index, so a pass costs what it deletes, not the
    table; a row still at work is kept however old it is."""
    result = await conn.execute(
        f"""DELETE FROM executions WHERE execution_id IN (
                SELECT execution_id FROM executions
                WHERE created_at < $1 AND stage = '{DONE}' LIMIT $2)""",
        created_before,
        limit,
    )
    return rows_affected(result)


# --- keeping leases alive ----------------------------------------------------------------


async def renew_leases(conn: Connection, execution_ids: Sequence[UUID], claimant: Claimant) -> int:
    """Extend the leases `claimant` still holds on these rows; returns how many it extended.

    A lease already run out is not revived (another replica may have taken the row over),
    and one set further ahead (a deferred retry) is never shortened."""
    result = await conn.execute(
        f"""UPDATE executions SET lease_until = greatest(lease_until, now() + $3::interval)
            WHERE execution_id = ANY($1::uuid[]) AND lease_owner = $2 AND lease_until > now()
              AND {ownership.may_act("lease_key")}""",
        list(execution_ids),
        claimant.name,
        claimant.lease,
    )
    return rows_affected(result)
