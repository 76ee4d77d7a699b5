"""Event subscribers: each writes rows in its one transaction; no AMC call happens here."""

from __future__ import annotations

import contextlib
import logging
from uuid import uuid4

from opentelemetry import trace
from opentelemetry.trace import Link, Span, Status, StatusCode

from services.poller import flow, logic, store, token_store, tracing
from services.poller.exchange import failure_policy
from services.poller.settings import PollerSettings
from shared.consumer import PermanentError, Tx
from shared.contract import (
    ExecutionRequested,
    ExecutionStatus,
    ScheduleDue,
    TokenRefreshed,
    TokenRefreshFailed,
    WeekRequested,
)
from shared.crypto import DecryptionError, KeyRing, token_fingerprint
from shared.runtime import ServiceRuntime
from shared.telemetry import trace_carrier

log = logging.getLogger(__name__)


def register_handlers(
    runtime: ServiceRuntime, settings: PollerSettings, keys: KeyRing, out: flow.Announcer
) -> None:
    tracer = tracing.tracer()

    async def accept(tx: Tx, event: logic.RequestEvent) -> None:
        # The contract's validators already refused (to the DLQ, with the reason) a request
        # whose origin does not name it or whose time zone does not exist.
        token = await token_store.cached_token(tx.conn, event.run.user_id)
        usable = token is not None and failure_policy.token_usable(
            token.expires_at, token.invalid, flow.now(), settings.token_expiry_margin_s
        )
        status = ExecutionStatus.QUEUED if usable else ExecutionStatus.WAITING_FOR_TOKEN
        share_group, daily_share = logic.share_of(event)
        row = await store.insert_execution(
            tx.conn,
            execution_id=uuid4(),
            origin=event.origin,
            attempt=logic.request_attempt(event),
            request_event_id=event.event_id,
            run=event.run,
            status=status,
            waiting_token=not usable,
            # This handler runs in the request's CONSUMER span: the row's later jobs
            # (submit, polls, download) continue its trace.
            trace_context=trace_carrier(),
            share_group=share_group,
            daily_share=daily_share,
            fire_time=event.fire_time if isinstance(event, ScheduleDue) else None,
        )
        if row is None:
            log.info("request %s:%s already has an execution", event.origin.kind, event.origin.id)
            return
        await tx.emit(
            flow.status_changed(row, None, ExecutionStatus.RECEIVED),
            flow.status_changed(
                row,
                ExecutionStatus.RECEIVED,
                status,
                reason=None if usable else "no valid access token cached",
            ),
        )
        if not usable:
            await flow.ask_for_token(tx.conn, runtime.outbox, row.user_id, "no valid token cached")

    @runtime.consumer.on(ScheduleDue)
    async def on_schedule_due(tx: Tx, event: ScheduleDue) -> None:
        await accept(tx, event)

    @runtime.consumer.on(WeekRequested)
    async def on_week_requested(tx: Tx, event: WeekRequested) -> None:
        await accept(tx, event)

    @runtime.consumer.on(ExecutionRequested)
    async def on_execution_requested(tx: Tx, event: ExecutionRequested) -> None:
        await accept(tx, event)

    @runtime.consumer.on(TokenRefreshed)
    async def on_token_refreshed(tx: Tx, event: TokenRefreshed) -> None:
        try:
            fingerprint = token_fingerprint(keys.decrypt(event.access_token_encrypted))
        except DecryptionError:
            raise PermanentError(
                "token.refreshed: access_token_encrypted cannot be decrypted with "
                "EVENT_ENCRYPTION_KEYS (key missing from the ring?)"
            ) from None
        await token_store.store_token(
            tx.conn,
            event.user_id,
            event.access_token_encrypted,
            event.expires_at,
            fingerprint,
            event.issued_at,
        )
        await token_store.close_token_request(tx.conn, event.user_id, fingerprint)
        cached = await token_store.cached_token(tx.conn, event.user_id)
        if cached is None or not failure_policy.token_usable(
            cached.expires_at, cached.invalid, flow.now(), settings.token_expiry_margin_s
        ):
            # Too close to expiry, or the very token AMC refused sent again (an answer to an
            # earlier request): the outstanding request, or the re-request loop, asks again.
            return
        for row in await token_store.waiting_for_token(tx.conn, event.user_id, fingerprint):
            status = (
                ExecutionStatus.QUEUED if row.status is ExecutionStatus.WAITING_FOR_TOKEN else None
            )
            now = flow.now()
            with tracing.token_wait(tracer, row, now):
                await flow.change(
                    tx.conn,
                    out,
                    row,
                    None,
                    status=status,
                    reason=f"access token {fingerprint} arrived",
                    waiting_token=False,
                    waiting_reason=None,
                    next_action_at=now,
                )

    @runtime.consumer.on(TokenRefreshFailed)
    async def on_token_refresh_failed(tx: Tx, event: TokenRefreshFailed) -> None:
        if not event.reauth_required:
            # The token service will try again; our outstanding request is re-sent after
            # token_request_retry_s if nothing arrives.
            log.warning(
                "token refresh failed for a user, not final", extra={"user_id": event.user_id}
            )
            return
        await token_store.close_token_request(tx.conn, event.user_id, None)
        await token_store.invalidate_token(tx.conn, event.user_id, None)
        error = failure_policy.reauth_error(event.reason)
        for row in await token_store.unserved_for_user(tx.conn, event.user_id):
            # A parked row's wait ends here, failed; one not parked yet (queued) fails in a
            # span of its own; both in the row's trace, linked to this consumer span.
            span: contextlib.AbstractContextManager[Span]
            if row.waiting_token:
                span = tracing.token_wait(tracer, row, flow.now())
            else:
                here = trace.get_current_span().get_span_context()
                span = tracing.job_span(tracer, "fail", row, links=[Link(here)])
            with span as current:
                current.set_status(Status(StatusCode.ERROR, error.code))
                await flow.change(
                    tx.conn, out, row, None, status=ExecutionStatus.FAILED, error=error
                )
