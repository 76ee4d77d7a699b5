"""Keeps token requests alive: one re-sent when unanswered, one opened for any waiting user."""

from __future__ import annotations

from datetime import timedelta

from services.poller import flow, store
from services.poller.worker import Context
from shared.contract import TokenRefreshRequested


async def resend_step(ctx: Context) -> bool:
    older_than = timedelta(seconds=ctx.settings.token_request_retry_s)
    async with ctx.pool.acquire() as conn, conn.transaction():
        stale = await store.stale_token_requests(conn, older_than, ctx.settings.claim_batch_size)
        await ctx.outbox.enqueue(
            conn,
            *(TokenRefreshRequested(user_id=u, reason="still no valid token") for u in stale),
        )
        # A token that arrived already expiring wakes nobody and closes the request: ask again.
        for user_id in await store.waiting_users_without_request(
            conn, ctx.settings.claim_batch_size
        ):
            await flow.ask_for_token(conn, ctx.outbox, user_id, "still no valid token")
    return False
