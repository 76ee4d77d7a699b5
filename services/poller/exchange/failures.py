"""The one place a failed AMC call changes an execution: failure_policy.after_failure decides, this
applies it (in one transaction, guarded by the row's lease)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from services.poller import claims, flow, logic, store, token_store
from services.poller.exchange import failure_policy
from services.poller.exchange.tokens import Token
from services.poller.rows import ExecRow
from services.poller.worker import Context
from shared.clients import ApiError
from shared.contract import ExecutionStatus

log = logging.getLogger(__name__)


def limits(ctx: Context, row: ExecRow) -> failure_policy.FailureLimits:
    s = ctx.settings
    return failure_policy.FailureLimits(
        max_transient_attempts=s.max_transient_attempts,
        reconcile_give_up_s=s.reconcile_give_up_s,
        results_unavailable_grace_s=s.results_unavailable_grace_s,
        download_give_up_s=s.download_give_up_s,
        timeout_s=logic.execution_timeout_s(
            row.run, s.amc_execution_timeout_s, s.amc_timeout_margin_s
        ),
    )


async def after_failed_call(
    ctx: Context, row: ExecRow, token: Token, exc: ApiError, call: failure_policy.AmcCall
) -> None:
    decided = failure_policy.after_failure(
        call, exc, row, token.fingerprint, limits(ctx, row), flow.now(), token.issued_at
    )
    await apply(ctx, row, decided, unsent=call == "create")


async def apply(
    ctx: Context, row: ExecRow, decided: failure_policy.AfterFailure, *, unsent: bool
) -> None:
    """Carry out what the policy decided for the row (`unsent`: AMC certainly has nothing
    for it yet, so while it waits for a token it shows WAITING_FOR_TOKEN)."""
    if decided.warning is not None:
        log.warning(
            "%s: %s", row.execution_id, decided.warning, extra={"execution_id": row.execution_id}
        )
    if decided.refused_fp is not None:
        await _refused(ctx, row, decided.refused_fp, decided.reason or "", unsent=unsent)
        return
    delay = (
        timedelta(seconds=decided.after_s)
        if decided.after_s is not None
        else ctx.backoff(decided.backoff_on)
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        if decided.error is not None:
            await flow.change(
                conn,
                ctx.out,
                row,
                ctx.owner,
                status=failure_policy.status_of(decided.error),
                error=decided.error,
            )
        elif decided.reconcile:
            # The lease end is when the reconciler may look.
            await store.defer(conn, row.execution_id, ctx.owner, delay, failures=decided.failures)
        else:
            fields: dict[str, Any] = dict(decided.fields)
            if decided.failures is not None:
                fields["failures"] = decided.failures
            if decided.throttled_s is not None:
                fields["waiting_reason"] = logic.throttled_reason(
                    decided.throttled_s,
                    flow.now() + delay,
                    await claims.used_today(conn, row.instance_id),
                    await ctx.instances.daily_cap(row.instance_id),
                )
            await flow.change(
                conn,
                ctx.out,
                row,
                ctx.owner,
                status=decided.status,
                reason=decided.reason,
                next_action_at=flow.now() + delay,
                **fields,
            )


async def _refused(ctx: Context, row: ExecRow, refused_fp: str, said: str, *, unsent: bool) -> None:
    """AMC refused token `refused_fp` for the row: it is never sent again. If a newer token is
    cached already (another run's refusal brought it), the row retries with it at once;
    otherwise the row waits, with its reason shown, for token.refreshed of a newer one."""
    wait_s = ctx.settings.refused_token_wait_s
    # One transaction: no other run may see the token refused before this one's request,
    # naming it, is open.
    async with ctx.pool.acquire() as conn, conn.transaction():
        await token_store.invalidate_token(conn, row.user_id, refused_fp)
        newer = await ctx.tokens.token(row.user_id, flow.now(), conn)
        if newer is not None and newer.fingerprint != refused_fp:
            await flow.change(
                conn,
                ctx.out,
                row,
                ctx.owner,
                status=ExecutionStatus.QUEUED if unsent else None,
                reason=f"{said}; retrying with the newer token {newer.fingerprint}",
                refused_token_fp=refused_fp,
                refused_at=flow.now(),
                next_action_at=flow.now(),
            )
            return
        await flow.wait_for_token(
            conn,
            ctx.out,
            row,
            ctx.owner,
            f"{said}; waiting for a newer token",
            unsent=unsent,
            refused_fp=refused_fp,
            refused_token_fp=refused_fp,
            refused_at=flow.now(),
            waiting_reason=failure_policy.waiting_reason(refused_fp, wait_s),
        )
