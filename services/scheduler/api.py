"""Management API under /schedules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, ValidationError

from services.scheduler import store
from services.scheduler.logic import RunKind, RunState, ScheduleState
from services.scheduler.operations import ConflictError, NotFoundError
from services.scheduler.run_preview import preview_runs, preview_schedule_runs
from services.scheduler.runs import template_of, window_rule_of
from services.scheduler.runtime import RuntimeDep
from services.scheduler.schemas import (
    TIME_RULES,
    PauseRequest,
    PreviewItem,
    PreviewOut,
    PreviewRequest,
    RerunOut,
    RerunRequest,
    RunOut,
    RunPage,
    ScheduleCreate,
    ScheduleOut,
    SchedulePage,
    ScheduleUpdate,
    StatsOut,
    TriggerRequest,
)
from services.scheduler.timing import ScheduleSpec, load_zone

router = APIRouter(prefix="/schedules", tags=["schedules"])

DESCRIPTION = (
    "Schedules that fire AMC workflow runs: the scheduler emits `schedule.due` events and "
    "learns each run's outcome from `execution.*` events. It never calls AMC.\n\n" + TIME_RULES
)


def paging(
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> store.Paging:
    return store.Paging(limit, offset)


PagingDep = Annotated[store.Paging, Depends(paging)]


def schedule_out(row: store.Schedule) -> ScheduleOut:
    # The row's fields by name; the API's own names and the spec's parts on top.
    spec: dict[str, Any] = row.spec
    next_fire_at = row.next_fire_at
    return ScheduleOut.model_validate(
        {
            **asdict(row),
            "next_fire_local": next_fire_at.astimezone(load_zone(row.timezone))
            if next_fire_at
            else None,
            "options": row.run_options,
            "cron": spec.get("cron"),
            "preset": spec.get("preset"),
            "start_date": spec.get("start_date"),
            "end_date": spec.get("end_date"),
            "window": row.window_rule,
            "retry": row.retry_policy,
        }
    )


def run_out(row: store.Run) -> RunOut:
    return RunOut.of_run(row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScheduleOut)
async def create_schedule(body: ScheduleCreate, runtime: RuntimeDep) -> ScheduleOut:
    """Create a schedule; it fires from its first fire time after now."""
    return schedule_out(await runtime.operations.create(body))


@router.get("", response_model=SchedulePage)
async def list_schedules(
    runtime: RuntimeDep,
    paging: PagingDep,
    user_id: str | None = None,
    instance_id: str | None = None,
    state: ScheduleState | None = None,
) -> SchedulePage:
    """Schedules, oldest first, filtered by user, AMC instance and state."""
    rows, total = await runtime.operations.list_schedules(
        user_id=user_id, instance_id=instance_id, state=state, paging=paging
    )
    return SchedulePage.of([schedule_out(r) for r in rows], total, paging)


@router.post("/preview", response_model=PreviewOut)
async def preview_spec(body: PreviewRequest, runtime: RuntimeDep) -> PreviewOut:
    """The next fire times of a cron expression or preset, without creating a schedule; with
    `parameters` or `window`, each fire time's concrete values of them too."""
    after = body.after or runtime.now()
    spec = body.spec()
    return _preview(
        spec,
        after,
        lambda: preview_runs(
            spec,
            after,
            body.count,
            window=body.window,
            parameters=body.parameters,
            week_start=body.week_start,
        ),
    )


@router.get("/{schedule_id}", response_model=ScheduleOut)
async def get_schedule(schedule_id: UUID, runtime: RuntimeDep) -> ScheduleOut:
    return schedule_out(await runtime.operations.get(schedule_id))


@router.patch("/{schedule_id}", response_model=ScheduleOut)
async def update_schedule(
    schedule_id: UUID, body: ScheduleUpdate, runtime: RuntimeDep
) -> ScheduleOut:
    """Change some fields; a change of when it fires recomputes the next fire time from now."""
    return schedule_out(await runtime.operations.update(schedule_id, body))


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(schedule_id: UUID, runtime: RuntimeDep) -> Response:
    """Delete a schedule and its run history. Runs in flight finish at AMC unobserved."""
    await runtime.operations.delete(schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{schedule_id}/pause", response_model=ScheduleOut)
async def pause_schedule(
    schedule_id: UUID, runtime: RuntimeDep, body: PauseRequest | None = None
) -> ScheduleOut:
    """Stop firing (a buffered run is skipped); emits `schedule.paused`. Pausing a paused
    schedule changes nothing."""
    note = body.note if body else None
    return schedule_out(await runtime.operations.pause(schedule_id, note))


@router.post("/{schedule_id}/resume", response_model=ScheduleOut)
async def resume_schedule(schedule_id: UUID, runtime: RuntimeDep) -> ScheduleOut:
    """Fire again from the next fire time after now: fire times missed while paused are not
    run. Resets the consecutive-failure count."""
    return schedule_out(await runtime.operations.resume(schedule_id))


@router.post("/{schedule_id}/trigger", status_code=status.HTTP_202_ACCEPTED, response_model=RunOut)
async def trigger_schedule(
    schedule_id: UUID, runtime: RuntimeDep, body: TriggerRequest | None = None
) -> RunOut:
    """Run now (a MANUAL run), paused or not, whatever the overlap policy. A second manual
    trigger within 5 minutes is refused with 409 unless `force` is true."""
    return run_out(await runtime.operations.trigger(schedule_id, force=bool(body and body.force)))


@router.get("/{schedule_id}/preview", response_model=PreviewOut)
async def preview_schedule(
    schedule_id: UUID,
    runtime: RuntimeDep,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
    after: AwareDatetime | None = None,
) -> PreviewOut:
    """The next `count` fire times after `after` (default now), in UTC and local time, each
    with the concrete time window and parameter values that run will send."""
    row = await runtime.operations.get(schedule_id)
    spec = ScheduleSpec.model_validate(row.spec)
    start = after or runtime.now()
    rule = window_rule_of(json.dumps(row.window_rule, sort_keys=True))
    return _preview(
        spec, start, lambda: preview_schedule_runs(spec, rule, template_of(row), start, count)
    )


@router.post("/{schedule_id}/rerun", status_code=status.HTTP_202_ACCEPTED, response_model=RerunOut)
async def rerun_schedule(schedule_id: UUID, body: RerunRequest, runtime: RuntimeDep) -> RerunOut:
    """Send the schedule's failed runs (FAILED, TIMED_OUT) with a fire time at or after
    `since` again: each one more attempt of its fire time, with the time window and parameter
    values it was first sent with. Succeeded, cancelled, skipped and in-flight runs are never
    picked."""
    runs = await runtime.operations.rerun(schedule_id, body.since, body.run_ids)
    return RerunOut(schedule_id=schedule_id, rerun=len(runs), runs=[run_out(r) for r in runs])


@router.get("/{schedule_id}/runs", response_model=RunPage)
async def schedule_runs(
    schedule_id: UUID,
    runtime: RuntimeDep,
    paging: PagingDep,
    state: RunState | None = None,
    kind: RunKind | None = None,
) -> RunPage:
    """Run history, newest fire time first, skipped fire times included."""
    rows, total = await runtime.operations.runs(schedule_id, state=state, kind=kind, paging=paging)
    return RunPage.of([run_out(r) for r in rows], total, paging)


@router.get(
    "/{schedule_id}/stats",
    response_model=StatsOut,
    description="Counts over the runs kept: all of them, or, with SCHEDULER_RUN_RETENTION_DAYS "
    "set, the open ones and those fired within it.",
)
async def schedule_stats(schedule_id: UUID, runtime: RuntimeDep) -> StatsOut:
    row, stats = await runtime.operations.stats(schedule_id)
    finished = stats.succeeded + stats.failed + stats.cancelled
    mean = stats.mean_duration_s
    # The counts by their names; the schedule's own fields and what is derived on top.
    return StatsOut.model_validate(
        {
            **asdict(stats),
            "mean_duration_s": float(mean) if mean is not None else None,
            "success_rate": stats.succeeded / finished if finished else None,
            "schedule_id": schedule_id,
            "state": row.state,
            "consecutive_failures": row.consecutive_failures,
            "next_fire_at": row.next_fire_at if row.state == "ACTIVE" else None,
        }
    )


def _preview(
    spec: ScheduleSpec, after: datetime, compute: Callable[[], list[dict[str, Any]]]
) -> PreviewOut:
    try:
        items = compute()
    except (ValueError, ValidationError) as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "after"), "msg": str(exc), "input": None}]
        ) from None
    return PreviewOut(
        timezone=spec.timezone,
        after=after.astimezone(UTC),
        items=[PreviewItem(**item) for item in items],
    )


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
