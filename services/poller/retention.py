"""What the poller keeps, kept only as long as asked: result files past
POLLER_RESULTS_RETENTION_DAYS and finished executions past POLLER_HISTORY_RETENTION_DAYS are
deleted, by one replica at a time."""

from __future__ import annotations

import logging
from datetime import timedelta

from services.poller import flow, store
from services.poller.settings import PollerSettings
from services.poller.worker import Context
from shared.db.prune import delete_in_batches, turn
from shared.outbox import Connection

log = logging.getLogger(__name__)

# One pass at a time across replicas; the others skip their turn (deleting twice is harmless,
# listing a large bucket twice is waste).
TURN = "amc-poller-retention"


def wanted(settings: PollerSettings) -> bool:
    return (
        settings.results_retention_days is not None or settings.history_retention_days is not None
    )


async def delete_old(ctx: Context) -> bool:
    """One retention pass; returns False so the loop waits its interval before the next."""
    async with ctx.pool.acquire() as conn, turn(conn, TURN) as mine:
        if not mine:
            return False
        if ctx.settings.results_retention_days is not None:
            await _delete_old_results(ctx, ctx.settings.results_retention_days)
        if ctx.settings.history_retention_days is not None:
            await _delete_old_executions(conn, ctx.settings.history_retention_days)
    return False


async def _delete_old_results(ctx: Context, days: float) -> None:
    cutoff = flow.now() - timedelta(days=days)
    deleted = await ctx.results.delete_older_than(cutoff)
    if deleted:
        log.info("retention: deleted %d result file(s) older than %s", deleted, cutoff)


async def _delete_old_executions(conn: Connection, days: float) -> None:
    cutoff = flow.now() - timedelta(days=days)
    deleted = await delete_in_batches(lambda batch: store.delete_finished(conn, cutoff, batch))
    if deleted:
        log.info("retention: deleted %d finished execution(s) requested before %s", deleted, cutoff)
