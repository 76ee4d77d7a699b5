"""A minimal service used by the foundation tests: it records what it consumes."""

from __future__ import annotations

from pathlib import Path

from opentelemetry import trace

from shared.config import ServiceSettings
from shared.consumer import PermanentError, Tx
from shared.contract import ExecutionRequested, Origin, OriginKind, WorkflowRun
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("probe_migrations")


def request(request_id: str, seq: int = 0) -> ExecutionRequested:
    return ExecutionRequested(
        request_id=request_id,
        origin=Origin(kind=OriginKind.EXTERNAL, id=request_id),
        run=WorkflowRun(
            user_id="user-1",
            instance_id="amc-1",
            advertiser_id="adv-1",
            marketplace_id="ATVPDKIKX0DER",
            workflow_id="wf-1",
            parameters={"seq": seq},
            time_window_start="2024-01-01T00:00:00Z",
            time_window_end="2024-01-08T00:00:00Z",
        ),
    )


def probe_runtime(settings: ServiceSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)

    @runtime.consumer.on(ExecutionRequested)
    async def on_request(tx: Tx, event: ExecutionRequested) -> None:
        if event.run.workflow_id == "reject-me":
            raise PermanentError("workflow reject-me is refused by the probe")
        span = trace.get_current_span().get_span_context()
        await tx.conn.execute(
            "INSERT INTO seen (event_id, request_id, seq, trace_id) VALUES ($1, $2, $3, $4)",
            event.event_id,
            event.request_id,
            event.run.parameters.get("seq", 0),
            format(span.trace_id, "032x") if span.is_valid else None,
        )

    return runtime
