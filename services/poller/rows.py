"""The poller's execution row as its store hands it back (typed, never a raw record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.contract import ExecutionStatus, Origin, OriginKind, WorkflowRun


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
    url_refreshes: int = 0
    workflow_version: int | None = None
    # Why a QUEUED row is held back (the instance's daily cap is used up); None otherwise.
    waiting_reason: str | None = None
    # A scheduled run's fire time (schedule.due); None for other origins.
    fire_time: datetime | None = None
    # The access token AMC last refused for this run, by fingerprint; None once AMC accepts.
    refused_token_fp: str | None = None
    # When AMC refused it: tokens held since before then are no newer than the refused one.
    refused_at: datetime | None = None
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
            url_refreshes=r["url_refreshes"],
            workflow_version=r["workflow_version"],
            waiting_reason=r["waiting_reason"],
            fire_time=r["fire_time"],
            refused_token_fp=r["refused_token_fp"],
            refused_at=r["refused_at"],
            trace_context=dict(r["trace_context"] or {}),
        )


def exec_rows(records: list[asyncpg.Record]) -> list[ExecRow]:
    return [ExecRow.of(r) for r in records]
