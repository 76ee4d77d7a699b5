"""Event subscribers: outcomes of the collector's own executions, one transaction each."""

from __future__ import annotations

from uuid import UUID

from services.collector.engine import Engine
from services.collector.logic import parse_week_id
from shared.consumer import PermanentError, Tx
from shared.contract import ExecutionCompleted, ExecutionSubmitted, Origin, OriginKind
from shared.runtime import ServiceRuntime


def _week(origin: Origin) -> UUID:
    week_id = parse_week_id(origin.id)
    if week_id is None:
        raise PermanentError(f"collection origin id {origin.id!r} is not a week id (UUID)")
    return week_id


def register(runtime: ServiceRuntime, engine: Engine) -> None:
    @runtime.consumer.on(ExecutionSubmitted)
    async def on_submitted(tx: Tx, event: ExecutionSubmitted) -> None:
        if event.origin.kind is not OriginKind.COLLECTION:
            return  # a schedule's or an external run: not ours
        await engine.on_submitted(tx.conn, _week(event.origin), event)

    @runtime.consumer.on(ExecutionCompleted)
    async def on_completed(tx: Tx, event: ExecutionCompleted) -> None:
        if event.origin.kind is not OriginKind.COLLECTION:
            return
        await engine.on_completed(tx.conn, _week(event.origin), event)
