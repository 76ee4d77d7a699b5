"""State changes of an execution together with the events that announce them (one transaction).

Every change of public status goes through `change`, so each one is published: the row and
its `execution.status_changed` (and `execution.completed` for a terminal status) are written
in the caller's transaction, through the outbox; and each execution that ends is counted
there, once, whichever path ended it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from services.poller import store, token_store
from services.poller.rows import ExecRow
from shared.contract import (
    Event,
    ExecutionCompleted,
    ExecutionError,
    ExecutionStatus,
    ExecutionStatusChanged,
    ExecutionSubmitted,
    ResultLocation,
    TokenRefreshRequested,
)
from shared.outbox import Connection, Outbox


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Announcer:
    """Where a state change goes besides the row: its events (the outbox) and, for an
    execution that ends, `amc_poller_executions_completed_total{status}`. The count is taken
    in the transaction: one that rolls back afterwards (rare) has counted its change."""

    outbox: Outbox
    completed: Counter


def status_changed(
    row: ExecRow,
    previous: ExecutionStatus | None,
    status: ExecutionStatus,
    *,
    reason: str | None = None,
    amc_execution_id: str | None = None,
) -> ExecutionStatusChanged:
    return ExecutionStatusChanged(
        execution_id=row.execution_id,
        origin=row.origin,
        previous_status=previous,
        status=status,
        amc_execution_id=amc_execution_id or row.amc_execution_id,
        reason=reason,
    )


def submitted(row: ExecRow, amc_execution_id: str) -> ExecutionSubmitted:
    return ExecutionSubmitted(
        execution_id=row.execution_id,
        amc_execution_id=amc_execution_id,
        instance_id=row.instance_id,
        user_id=row.user_id,
        origin=row.origin,
    )


async def change(
    conn: Connection,
    out: Announcer,
    row: ExecRow,
    owner: str | None,
    *,
    status: ExecutionStatus | None = None,
    reason: str | None = None,
    error: ExecutionError | None = None,
    result: ResultLocation | None = None,
    extra_events: tuple[Event, ...] = (),
    release: bool = True,
    **fields: Any,
) -> bool:
    """Update the row (only while `owner` holds it, if given) and publish what changed."""
    sets = dict(fields)
    events: list[Event] = list(extra_events)
    amc_id = fields.get("amc_execution_id") or row.amc_execution_id
    if status is not None:
        sets["status"] = status.value
        if status.is_terminal:
            sets.update(stage=store.DONE, completed_at=now(), waiting_token=False)
            if error is not None:
                sets.update(
                    error_code=error.code,
                    error_message=error.message,
                    error_retryable=error.retryable,
                )
            if result is not None:
                sets.update(
                    result_uri=result.uri,
                    result_rows=result.row_count,
                    result_bytes=result.size_bytes,
                )
        if status is not row.status:
            text = reason or (error.message if error is not None else None)
            events.append(
                status_changed(row, row.status, status, reason=text, amc_execution_id=amc_id)
            )
        if status.is_terminal:
            events.append(
                ExecutionCompleted(
                    execution_id=row.execution_id,
                    origin=row.origin,
                    status=status.value,
                    amc_execution_id=amc_id,
                    instance_id=row.instance_id,
                    user_id=row.user_id,
                    error=error,
                    result=result,
                    dry_run=row.run.options.dry_run is True,
                )
            )
    if "waiting_token" in sets and sets["waiting_token"] != row.waiting_token:
        # The start of the "token wait" span, ended when a token.refreshed resumes the row.
        sets["waiting_token_since"] = now() if sets["waiting_token"] else None
    if not await store.update(conn, row.execution_id, owner, sets, release=release):
        return False
    await out.outbox.enqueue(conn, *events)
    if status is not None and status.is_terminal:
        out.completed.labels(status.value).inc()
    return True


async def ask_for_token(
    conn: Connection, outbox: Outbox, user_id: str, reason: str, refused_fp: str | None = None
) -> None:
    """One outstanding token.refresh_requested per user, however many executions wait; one
    more when AMC refused a token the outstanding request does not name."""
    opened = await token_store.open_token_request(conn, user_id, refused_fp)
    if opened is not None:
        await outbox.enqueue(
            conn,
            TokenRefreshRequested(
                user_id=user_id, reason=reason[:500], refused_token_fp=opened.refused_fp
            ),
        )


async def wait_for_token(
    conn: Connection,
    out: Announcer,
    row: ExecRow,
    owner: str | None,
    reason: str,
    *,
    unsent: bool,
    refused_fp: str | None = None,
    **fields: Any,
) -> bool:
    """Park the row until token.refreshed (or token.refresh_failed) for its user arrives;
    with `refused_fp`, until a token other than that one (which AMC refused) arrives.

    A row that certainly has nothing at AMC (`unsent`) becomes WAITING_FOR_TOKEN; a row that
    may have an execution there keeps its status (it runs on at AMC) and only pauses.
    """
    status = ExecutionStatus.WAITING_FOR_TOKEN if unsent else None
    ok = await change(
        conn, out, row, owner, status=status, reason=reason, waiting_token=True, **fields
    )
    if ok:
        await ask_for_token(conn, out.outbox, row.user_id, reason, refused_fp)
    return ok
