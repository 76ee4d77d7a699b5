"""Results older than POLLER_RESULTS_RETENTION_DAYS are deleted, by one replica at a time."""

from __future__ import annotations

import logging
from datetime import timedelta

from services.poller import flow
from services.poller.worker import Context

log = logging.getLogger(__name__)

# One pass at a time across replicas; the others skip their turn (deleting twice is harmless,
# listing a large bucket twice is waste).
_LOCK = "SELECT pg_try_advisory_lock(hashtext('amc-poller-retention'))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext('amc-poller-retention'))"


async def delete_old_results(ctx: Context) -> bool:
    """One retention pass; returns False so the loop waits its interval before the next."""
    days = ctx.settings.results_retention_days
    if days is None:
        return False
    async with ctx.pool.acquire() as conn:
        if not await conn.fetchval(_LOCK):
            return False
        try:
            cutoff = flow.now() - timedelta(days=days)
            deleted = await ctx.results.delete_older_than(cutoff)
        finally:
            await conn.fetchval(_UNLOCK)
    if deleted:
        log.info("retention: deleted %d result file(s) older than %s", deleted, cutoff)
    return False
