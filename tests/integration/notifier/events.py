"""Events the notifier's tests publish."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from shared.contract import (
    DeadLetter,
    ExecutionCompleted,
    ExecutionError,
    Origin,
    OriginKind,
    ResultLocation,
)


def failed(
    *,
    instance: str = "amcinst01",
    user: str = "user-1",
    code: Any = "AMC_FAILED",
    message: str = "Query failed: column impressionz does not exist",
    status: Literal["FAILED", "TIMED_OUT", "CANCELLED"] = "FAILED",
    execution_id: UUID | None = None,
) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=execution_id or uuid4(),
        origin=Origin(kind=OriginKind.SCHEDULE, id=str(uuid4())),
        status=status,
        amc_execution_id="amc-exec-1",
        instance_id=instance,
        user_id=user,
        error=ExecutionError(code=code, message=message, retryable=False),
    )


def succeeded(
    *, instance: str = "amcinst01", execution_id: UUID | None = None
) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=execution_id or uuid4(),
        origin=Origin(kind=OriginKind.EXTERNAL, id=f"req-{uuid4().hex[:6]}"),
        status="SUCCEEDED",
        amc_execution_id="amc-exec-2",
        instance_id=instance,
        user_id="user-1",
        result=ResultLocation(uri="file:///results/x.csv", row_count=12, size_bytes=345),
    )


def dead_letter(source_topic: str, *, offset: int = 7) -> DeadLetter:
    return DeadLetter(
        source_topic=source_topic,
        partition=1,
        offset=offset,
        consumer="amc-poller",
        reason="invalid schedule.due event: run.instance_id: Field required",
        error_type="InvalidEventError",
        failed_at=datetime.now(UTC),
        key="sched-1",
        headers={},
        payload='{"broken": true}',
    )
