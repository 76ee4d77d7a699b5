"""A minimal service used by the foundation tests: it records what it consumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import Span

from shared.config import ServiceSettings
from shared.consumer import BatchTx, PermanentError, Tx
from shared.contract import ExecutionRequested, Origin, OriginKind, WorkflowRun
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("probe_migrations")

REFUSED_WORKFLOW = "reject-me"


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


def _trace_id(span: Span) -> str | None:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def probe_runtime(settings: ServiceSettings, *, batch_handler: bool = True) -> ServiceRuntime:
    """The probe, handling a batch's events in one insert, or (`batch_handler=False`) one
    event at a time, as most services do."""
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)

    if batch_handler:

        @runtime.consumer.on_batch(ExecutionRequested)
        async def on_requests(tx: BatchTx, events: Sequence[ExecutionRequested]) -> None:
            if any(event.run.workflow_id == REFUSED_WORKFLOW for event in events):
                raise PermanentError(f"workflow {REFUSED_WORKFLOW} is refused by the probe")
            await tx.conn.execute(
                """INSERT INTO seen (event_id, request_id, seq, trace_id)
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[])""",
                [event.event_id for event in events],
                [event.request_id for event in events],
                [event.run.parameters.get("seq", 0) for event in events],
                [_trace_id(span) for span in tx.spans],
            )

    else:

        @runtime.consumer.on(ExecutionRequested)
        async def on_request(tx: Tx, event: ExecutionRequested) -> None:
            if event.run.workflow_id == REFUSED_WORKFLOW:
                raise PermanentError(f"workflow {REFUSED_WORKFLOW} is refused by the probe")
            await tx.conn.execute(
                "INSERT INTO seen (event_id, request_id, seq, trace_id) VALUES ($1, $2, $3, $4)",
                event.event_id,
                event.request_id,
                event.run.parameters.get("seq", 0),
                _trace_id(trace.get_current_span()),
            )

    return runtime
