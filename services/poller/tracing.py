"""Spans of the poller's background work.

A row stores the carrier of the span it was created in (the CONSUMER span of schedule.due,
week.requested or execution.requested). Every job later done for the row (submit, reconcile,
poll, download, cancel) is a span "execution <job>" that continues that trace, so one run is
one trace however long it waits between steps, and no span stays open across a wait. Events
enqueued during a job are published under the job's span; httpx CLIENT spans are its
children.

Attributes carry ids only: never a token, never a pre-signed result URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from services.poller.rows import ExecRow
from shared.telemetry import continue_trace

TRACER_NAME = "amc.poller"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def row_attributes(row: ExecRow) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "amc.execution_id": str(row.execution_id),
        "amc.user_id": row.user_id,
        "amc.instance_id": row.instance_id,
        "amc.origin.kind": row.origin.kind.value,
        "amc.origin.id": row.origin.id,
    }
    if row.amc_execution_id is not None:
        attributes["amc.amc_execution_id"] = row.amc_execution_id
    return attributes


@contextmanager
def job_span(
    tracer: Tracer, job: str, row: ExecRow, *, links: Sequence[Link] = ()
) -> Iterator[Span]:
    """The current span "execution <job>" for work on `row`, a child of its stored carrier.

    Open it inside the coroutine that does the work (a task copies the context it is
    created in, so a span opened around `create_task` would not be current in the job)."""
    with continue_trace(
        tracer, f"execution {job}", row.trace_context, attributes=row_attributes(row), links=links
    ) as span:
        yield span


def failed(span: Span, exc: BaseException, description: str | None = None) -> None:
    """Mark a span failed. Client errors' messages are already redacted of tokens and URL
    signatures (shared.clients.errors), so the exception may be recorded as it is."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, description or type(exc).__name__))


def _ns(moment: datetime) -> int:
    return ((moment - _EPOCH) // timedelta(microseconds=1)) * 1000


@contextmanager
def token_wait(tracer: Tracer, row: ExecRow, now: datetime) -> Iterator[Span]:
    """The span "token wait" of a parked row: from when it was parked until now, a child of
    the row's stored carrier, linked to the span that ends the wait (the token.refreshed or
    token.refresh_failed CONSUMER span, current when this is called).

    It is current while the resume is recorded, so the events that announce it stay in the
    row's trace. Should the handler's transaction be retried, the retry emits it again.
    """
    ending = trace.get_current_span().get_span_context()
    links = [Link(ending)] if ending.is_valid else []
    since = row.waiting_token_since or row.updated_at
    end_ns = _ns(now)
    span = tracer.start_span(
        "token wait",
        context=propagate.extract(dict(row.trace_context), context=Context()),
        kind=SpanKind.INTERNAL,
        attributes=row_attributes(row),
        links=links,
        # The database's clock parked it: never start after the end.
        start_time=min(_ns(since), end_ns),
    )
    try:
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield span
    except BaseException as exc:
        failed(span, exc)
        raise
    finally:
        span.end(end_time=end_ns)
