"""Keeps token requests alive: one re-sent when unanswered, one opened for any waiting user;
and ends the wait of a run AMC refused a token for, once no newer token came in time."""

from __future__ import annotations

from datetime import timedelta

from services.poller import flow, token_store
from services.poller.exchange import failure_policy
from services.poller.worker import Context
from shared.contract import ExecutionStatus, TokenRefreshRequested


async def resend_step(ctx: Context) -> bool:
    s = ctx.settings
    older_than = timedelta(seconds=s.token_request_retry_s)
    async with ctx.pool.acquire() as conn, conn.transaction():
        stale = await token_store.stale_token_requests(conn, older_than, s.claim_batch_size)
        await ctx.outbox.enqueue(
            conn,
            *(
                TokenRefreshRequested(
                    user_id=user_id, reason="still no valid token", refused_token_fp=refused
                )
                for user_id, refused in stale
            ),
        )
        # A token that arrived already expiring wakes nobody and closes the request: ask again.
        for user_id in await token_store.waiting_users_without_request(conn, s.claim_batch_size):
            await flow.ask_for_token(conn, ctx.outbox, user_id, "still no valid token")
    async with ctx.pool.acquire() as conn, conn.transaction():
        wait = timedelta(seconds=s.refused_token_wait_s)
        for row in await token_store.refused_waits_past(conn, wait, s.claim_batch_size):
            assert row.refused_token_fp is not None
            await flow.change(
                conn,
                ctx.out,
                row,
                None,
                status=ExecutionStatus.FAILED,
                error=failure_policy.refused_wait_error(
                    row.refused_token_fp, s.refused_token_wait_s
                ),
            )
    return False
