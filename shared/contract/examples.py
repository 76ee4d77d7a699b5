"""One valid example of every event, as docs/asyncapi.json shows it to other producers.

Built from the models, so an example that stops being valid fails at import, and the
contract tests decode each one as the consumers do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TypeVar
from uuid import UUID

# Written against the contract's public names, as another producer would write them.
from shared import contract

E = TypeVar("E", bound=contract.Event)

_AT = datetime(2024, 9, 25, 3, 11, 52, tzinfo=UTC)
_EXECUTION = UUID("0b6c3e8e-6c2a-4c55-9d1f-3e0a7d1c9b10")
_AMC_EXECUTION = "b3a77999-7c8e-4289-9bf9-5da8f178536c"
_SCHEDULE, _RUN = (
    UUID("5f0c1f8a-1c2d-4e3f-8a9b-0c1d2e3f4a5b"),
    UUID("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
)
_COLLECTION, _WEEK = (
    UUID("1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a"),
    UUID("2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"),
)


def _id(n: int) -> UUID:
    return UUID(int=n, version=4)


def _event(model: type[E], n: int, **fields: object) -> E:
    """Example `n` of `model`: every example happened at one moment, each has its own id."""
    return model.model_validate({"event_id": _id(n), "occurred_at": _AT, **fields})


def _run(**changes: object) -> contract.WorkflowRun:
    values: dict[str, object] = {
        "user_id": "user-42",
        "instance_id": "amcexample01",
        "advertiser_id": "ENTITYEXAMPLE1",
        "marketplace_id": "ATVPDKIKX0DER",
        "workflow_id": "weekly-reach",
        "time_window_start": datetime(2024, 1, 20, 5, 0, tzinfo=UTC),
        "time_window_end": datetime(2024, 1, 27, 5, 0, tzinfo=UTC),
        "time_window_time_zone": "America/New_York",
        "parameters": {"campaign_id": "c-1"},
    }
    values.update(changes)
    return contract.WorkflowRun.model_validate(values)


_EXTERNAL = contract.Origin(kind=contract.OriginKind.EXTERNAL, id="crm-sync-2024-09-25")

_COMPLETED = _event(
    contract.ExecutionCompleted,
    6,
    execution_id=_EXECUTION,
    origin=_EXTERNAL,
    status="SUCCEEDED",
    amc_execution_id=_AMC_EXECUTION,
    instance_id="amcexample01",
    user_id="user-42",
    result=contract.ResultLocation(
        uri="file:///var/results/amcexample01/0b6c3e8e", row_count=1520, size_bytes=88211
    ),
)

EXAMPLES: tuple[contract.Event, ...] = (
    _event(
        contract.ScheduleDue,
        1,
        schedule_id=_SCHEDULE,
        run_id=_RUN,
        fire_time=_AT,
        origin=contract.Origin(kind=contract.OriginKind.SCHEDULE, id=str(_RUN)),
        run=_run(),
    ),
    _event(
        contract.WeekRequested,
        2,
        collection_id=_COLLECTION,
        week_id=_WEEK,
        week_start=date(2024, 1, 1),
        week_end=date(2024, 1, 7),
        attempt=1,
        origin=contract.Origin(kind=contract.OriginKind.COLLECTION, id=str(_WEEK)),
        run=_run(
            time_window_start=datetime(2024, 1, 1, tzinfo=UTC),
            time_window_end=datetime(2024, 1, 8, tzinfo=UTC),
            time_window_time_zone="UTC",
        ),
    ),
    _event(
        contract.ExecutionRequested,
        3,
        request_id=_EXTERNAL.id,
        origin=_EXTERNAL,
        run=_run(),
    ),
    _event(
        contract.ExecutionSubmitted,
        4,
        execution_id=_EXECUTION,
        amc_execution_id=_AMC_EXECUTION,
        instance_id="amcexample01",
        user_id="user-42",
        origin=_EXTERNAL,
    ),
    _event(
        contract.ExecutionStatusChanged,
        5,
        execution_id=_EXECUTION,
        origin=_EXTERNAL,
        previous_status=contract.ExecutionStatus.PENDING,
        status=contract.ExecutionStatus.RUNNING,
        amc_execution_id=_AMC_EXECUTION,
    ),
    _COMPLETED,
    _event(
        contract.TokenRefreshRequested,
        7,
        user_id="user-42",
        reason="AMC refused access token 3f2a9c1be07d",
        refused_token_fp="3f2a9c1be07d",
    ),
    _event(
        contract.TokenRefreshed,
        8,
        user_id="user-42",
        access_token_encrypted="gAAAAA-example-fernet-token",
        expires_at=datetime(2024, 9, 25, 4, 11, 52, tzinfo=UTC),
        issued_at=datetime(2024, 9, 25, 3, 11, 52, tzinfo=UTC),
    ),
    _event(
        contract.TokenRefreshFailed,
        9,
        user_id="user-42",
        reauth_required=True,
        reason="invalid_grant: the refresh token was revoked",
    ),
    _event(
        contract.SchedulePaused,
        10,
        schedule_id=_SCHEDULE,
        reason="3 consecutive failed runs",
        consecutive_failures=3,
    ),
    _event(
        contract.CollectionCompleted,
        11,
        collection_id=_COLLECTION,
        status="COMPLETED_WITH_FAILURES",
        weeks_total=52,
        weeks_succeeded=51,
        weeks_failed=1,
    ),
)

# A failed completion too: the rule that a non-SUCCEEDED one carries its error.
FAILED_COMPLETION = contract.ExecutionCompleted.model_validate(
    _COMPLETED.model_dump(exclude={"result"})
    | {
        "event_id": _id(12),
        "status": "FAILED",
        "error": contract.ExecutionError(
            code="AMC_FAILED", message="Column x not found", retryable=True
        ),
    }
)
