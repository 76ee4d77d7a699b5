"""Management API: /executions (list, show, cancel)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, status
from opentelemetry import trace
from opentelemetry.trace import Link
from pydantic import BaseModel, Field

from services.poller import flow, logic, store, tracing
from services.poller.rows import ExecRow
from services.poller.runtime import RuntimeDep
from shared.contract import ExecutionStatus, Origin, OriginKind, WorkflowRun
from shared.not_found import found

router = APIRouter(prefix="/executions", tags=["executions"])


class ExecutionErrorView(BaseModel):
    code: str
    message: str
    retryable: bool


class ResultView(BaseModel):
    uri: str
    row_count: int
    size_bytes: int


class ExecutionView(BaseModel):
    execution_id: UUID
    status: ExecutionStatus
    origin: Origin
    attempt: int
    user_id: str
    instance_id: str
    workflow_id: str | None = Field(description="The saved workflow; null for an ad hoc run")
    workflow_version: int | None = Field(
        default=None,
        description="The version pushed through /workflows that this execution ran (null: ad "
        "hoc, or a workflow saved elsewhere)",
    )
    run: WorkflowRun
    amc_execution_id: str | None
    amc_status: str | None
    waiting_for_token: bool
    cancel_requested: bool
    polls: int
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    next_action_at: datetime | None
    waiting_reason: str | None = Field(
        default=None, description="Why a QUEUED run is held back (e.g. AMC's daily cap)"
    )
    error: ExecutionErrorView | None
    result: ResultView | None

    @classmethod
    def of(cls, row: ExecRow) -> ExecutionView:
        error = None
        if row.error_code is not None:
            error = ExecutionErrorView(
                code=row.error_code,
                message=row.error_message or "",
                retryable=bool(row.error_retryable),
            )
        result = None
        if row.result_uri is not None:
            result = ResultView(
                uri=row.result_uri,
                row_count=row.result_rows or 0,
                size_bytes=row.result_bytes or 0,
            )
        # The row's fields by name; the API's own names and the parts built above on top
        # (the row's other fields, such as its stage and trace context, are not shown).
        return cls.model_validate(
            {
                **vars(row),
                "workflow_id": row.run.workflow_id,
                "waiting_for_token": row.waiting_token,
                "polls": row.poll_count,
                "next_action_at": None if row.stage == store.DONE else row.next_action_at,
                "error": error,
                "result": result,
            }
        )


class ExecutionList(BaseModel):
    executions: list[ExecutionView]
    limit: int
    offset: int


@router.get("", response_model=ExecutionList)
async def list_executions(
    runtime: RuntimeDep,
    status_: Annotated[ExecutionStatus | None, Query(alias="status")] = None,
    user_id: Annotated[str | None, Query(min_length=1)] = None,
    instance_id: Annotated[str | None, Query(min_length=1)] = None,
    origin_kind: OriginKind | None = None,
    origin_id: Annotated[str | None, Query(min_length=1)] = None,
    workflow_id: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ExecutionList:
    """Newest first; every filter is optional."""
    async with runtime.pool.acquire() as conn:
        rows = await store.list_executions(
            conn,
            status=status_.value if status_ else None,
            user_id=user_id,
            instance_id=instance_id,
            origin_kind=origin_kind.value if origin_kind else None,
            origin_id=origin_id,
            workflow_id=workflow_id,
            limit=limit,
            offset=offset,
        )
    return ExecutionList(executions=[ExecutionView.of(r) for r in rows], limit=limit, offset=offset)


class ExecutionCount(BaseModel):
    count: int


@router.get("/count", response_model=ExecutionCount)
async def count_executions(
    runtime: RuntimeDep,
    status_: Annotated[ExecutionStatus, Query(alias="status")],
    completed_after: datetime,
) -> ExecutionCount:
    """How many executions ended in `status` after a time (the console's "failed in the last
    24 h"), counted on an index instead of listing them."""
    if completed_after.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "completed_after: give a time zone"
        )
    async with runtime.pool.acquire() as conn:
        found = await store.count_completed(conn, status_.value, completed_after)
    return ExecutionCount(count=found)


class DayCounts(BaseModel):
    day: date = Field(description="The UTC day")
    counts: dict[str, int] = Field(description="Executions completed that day, by status")


class DailyCounts(BaseModel):
    days: list[DayCounts] = Field(description="Oldest first, every day of the span")


@router.get("/daily", response_model=DailyCounts)
async def daily_counts(
    runtime: RuntimeDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> DailyCounts:
    """Executions completed per UTC day and status over the last `days` days, today
    included (the console's runs-per-day chart), in one grouped query."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    async with runtime.pool.acquire() as conn:
        found = await store.completed_per_day(conn, datetime.combine(first, time(), UTC))
    counts: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(days)}
    for day, status_, n in found:
        if day in counts:
            counts[day][status_] = n
    return DailyCounts(days=[DayCounts(day=d, counts=c) for d, c in counts.items()])


@router.get("/{execution_id}", response_model=ExecutionView)
async def show_execution(runtime: RuntimeDep, execution_id: UUID) -> ExecutionView:
    async with runtime.pool.acquire() as conn:
        row = await store.get_execution(conn, execution_id)
    return ExecutionView.of(found(row, f"execution {execution_id} not found"))


@router.post(
    "/{execution_id}/cancel", response_model=ExecutionView, status_code=status.HTTP_202_ACCEPTED
)
async def cancel_execution(runtime: RuntimeDep, execution_id: UUID) -> Any:
    """Cancel: at once if AMC does not have it yet, else at AMC (PUT status CANCELLED), then
    CANCELLED once AMC shows it so."""
    announcer = runtime.announcer
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = found(await store.lock(conn, execution_id), f"execution {execution_id} not found")
        if row.status.is_terminal:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"execution {execution_id} is already {row.status.value}",
            )
        unsent = row.status in (
            ExecutionStatus.RECEIVED,
            ExecutionStatus.WAITING_FOR_TOKEN,
            ExecutionStatus.QUEUED,
        )
        if unsent:
            # Announced in the run's trace (linked to this call's SERVER span), like every
            # other step of the run.
            here = trace.get_current_span().get_span_context()
            links = [Link(here)] if here.is_valid else []
            with tracing.job_span(tracing.tracer(), "cancel", row, links=links):
                await flow.change(
                    conn,
                    announcer,
                    row,
                    None,
                    status=ExecutionStatus.CANCELLED,
                    error=logic.error("CANCELLED", "cancelled on request before AMC had it"),
                    cancel_requested=True,
                )
        elif row.status is ExecutionStatus.SUBMITTING or row.stage == store.DOWNLOAD:
            # The POST (or the download) is under way: the loop that owns it finishes first,
            # and the submitter turns a pending cancel into a cancel at AMC.
            await store.update(conn, execution_id, None, {"cancel_requested": True}, release=False)
        else:
            await store.update(
                conn,
                execution_id,
                None,
                {
                    "cancel_requested": True,
                    "cancel_kind": "user",
                    "failures": 0,
                    "stage": store.CANCEL,
                    "next_action_at": flow.now(),
                },
                release=False,
            )
        updated = await store.get_execution(conn, execution_id)
    assert updated is not None
    return ExecutionView.of(updated)
