"""Submitting to AMC exactly once.

The intent (SUBMITTING, with its time) is committed before the POST. If the process dies
between the POST and recording AMC's answer, or the answer is ambiguous (5xx, timeout), the
row stays SUBMITTING; once its owner is gone (its owner lock released: at once after a crash)
or its lease ends it is reconciled against AMC's list of executions (creation time around the
intent, workflow id, time window) and only if AMC has none is it queued to be submitted
again. A row taken from an owner that died may have had its POST on the wire: "AMC has none"
counts only once the intent is older than a POST may take (amc_http_timeout_s); before that
the reconciler looks again then.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from opentelemetry import trace

from services.poller import claims, flow, logic, store, tracing
from services.poller.exchange import failures
from services.poller.instances import registry
from services.poller.instances.directory import UnknownInstanceError
from services.poller.rows import ExecRow
from services.poller.worker import Context, TaskSet
from shared.clients import ApiError, ExecutionInfo
from shared.contract import ExecutionStatus
from shared.outbox import Connection

log = logging.getLogger(__name__)


class Submitter:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tasks = TaskSet(
            limit=max(ctx.settings.claim_batch_size, 1), name="submitter", tracer=ctx.tracer
        )

    async def step(self) -> bool:
        ctx = self.ctx
        busy = False
        # Most steps find nothing to do: each look is one statement, with no transaction
        # around it unless it found work.
        if self.tasks.room > 0 and not ctx.amc.open("list"):
            async with ctx.pool.acquire() as conn:
                unresolved = await store.claim_unresolved_submissions(
                    conn, ctx.claimant, self.tasks.room
                )
            for row, orphaned in unresolved:
                self.tasks.spawn("reconcile", row, self.reconcile(row, orphaned=orphaned))
            busy = bool(unresolved)
        async with ctx.pool.acquire() as conn:
            # A probe, its lock gone with the statement; the rows are taken in a transaction.
            if await store.cancelled_while_queued(conn, 1):
                await self._cancel_queued(conn)
        if self.tasks.room <= 0 or ctx.amc.open("create"):
            return busy
        async with ctx.pool.acquire() as conn:
            instances = await claims.instances_with_queued(conn)
        for queued in instances:
            instance_id = queued.instance_id
            daily_cap = await ctx.instances.daily_cap(instance_id)
            cap = await ctx.instances.max_running(instance_id)
            if queued.nothing_to_claim(cap, daily_cap):
                continue
            async with ctx.pool.acquire() as conn, conn.transaction():
                claim = await claims.claim_submissions(
                    conn, instance_id, cap, ctx.claimant, daily_cap=daily_cap
                )
                # Dry runs too, past a full day: AMC's dryRun does not consume its quota.
                claimed = claim.rows + await claims.claim_dry_runs(
                    conn, instance_id, cap, ctx.claimant
                )
                if claim.day_full:
                    await self._hold_for_the_day(conn, instance_id, claim.used_today, daily_cap)
                if claim.share_held:
                    log.info(
                        "instance %s: %d collection week(s) wait for their share of tomorrow",
                        instance_id,
                        claim.share_held,
                        extra={"instance_id": instance_id},
                    )
                # Each announced in its own run's trace (the loop itself has none).
                await ctx.outbox.enqueue(
                    conn,
                    *(
                        flow.status_changed(row, ExecutionStatus.QUEUED, ExecutionStatus.SUBMITTING)
                        for row in claimed
                    ),
                    trace_contexts=[row.trace_context for row in claimed],
                )
            for row in claimed:
                self.tasks.spawn("submit", row, self.submit(row))
            busy = busy or bool(claimed)
        return busy

    async def _cancel_queued(self, conn: Connection) -> None:
        """QUEUED rows whose cancel arrived while their submission was under way end here."""
        ctx = self.ctx
        async with conn.transaction():
            for row in await store.cancelled_while_queued(conn, ctx.settings.claim_batch_size):
                with tracing.job_span(ctx.tracer, "cancel", row):
                    await flow.change(
                        conn,
                        ctx.out,
                        row,
                        None,
                        status=ExecutionStatus.CANCELLED,
                        error=logic.error("CANCELLED", "cancelled on request before AMC had it"),
                    )

    async def _hold_for_the_day(
        self, conn: Connection, instance_id: str, used: int, daily_cap: int
    ) -> None:
        """AMC takes a limited number of executions per instance a day; rather than be
        refused, the rest of the day's runs wait, QUEUED, for the next UTC day."""
        held = await claims.hold_until_tomorrow(
            conn,
            instance_id,
            logic.daily_cap_reason(instance_id, used, daily_cap),
        )
        if held:
            self.ctx.amc.metrics.daily_cap_parked.labels(instance_id).inc(held)
            log.warning(
                "instance %s used its %d executions for today; %d run(s) wait for the next UTC day",
                instance_id,
                daily_cap,
                held,
                extra={"instance_id": instance_id},
            )

    # --- the POST ------------------------------------------------------------------------

    async def submit(self, row: ExecRow) -> None:
        ctx = self.ctx
        try:
            target = await ctx.instances.resolve(row.run)
        except UnknownInstanceError as exc:
            error = logic.error("UNKNOWN_INSTANCE", str(exc))
            await ctx.change(row, status=ExecutionStatus.FAILED, error=error)
            return
        token = await ctx.tokens.token(row.user_id, flow.now())
        if token is None:
            await ctx.wait_for_token(row, "no valid access token cached", unsent=True)
            return
        request = logic.amc_request(row.run, sandbox=target.sandbox)
        if not ctx.owns:
            # This replica's owner session ended since the claim: the row is another
            # replica's to reconcile (it finds nothing at AMC and submits it then).
            log.warning("owner lock lost before submitting %s; not posting", row.execution_id)
            return
        try:
            info = await ctx.amc.create(token, target, request)
        except ApiError as exc:
            await failures.after_failed_call(ctx, row, token, exc, "create")
            return
        if ctx.settings.test_pause_after_post_s:
            await asyncio.sleep(ctx.settings.test_pause_after_post_s)
        await self._accepted(row, info, "submitted")

    async def _accepted(self, row: ExecRow, info: ExecutionInfo, how: str) -> None:
        ctx = self.ctx
        observed = logic.interpret(info)
        trace.get_current_span().set_attributes(
            {
                "amc.amc_execution_id": info.workflow_execution_id,
                "amc.amc_status": info.status.value,
            }
        )
        async with ctx.pool.acquire() as conn, conn.transaction():
            # The API may have asked to cancel while the POST was under way.
            fresh = await store.lock(conn, row.execution_id)
            cancel = fresh.cancel_requested if fresh is not None else row.cancel_requested
            fields: dict[str, Any] = {
                "amc_execution_id": info.workflow_execution_id,
                "amc_status": info.status_text or info.status.value,
                "refused_token_fp": None,
                "refused_at": None,
                "workflow_version": await self._version_ran(conn, row),
                "submitted_at": flow.now(),
                "failures": 0,
                "poll_count": 0,
            }
            if cancel:
                stage, status, when = store.CANCEL, ExecutionStatus.PENDING, flow.now()
                fields["cancel_kind"] = "user"
            elif observed.status.is_terminal or observed.download:
                stage, status, when = store.POLL, ExecutionStatus.PENDING, flow.now()
            else:
                stage, status = store.POLL, observed.status
                when = logic.next_poll_at(
                    flow.now(),
                    0,
                    ctx.settings.poll_intervals_s,
                    flow.now()
                    + timedelta(
                        seconds=logic.execution_timeout_s(
                            row.run,
                            ctx.settings.amc_execution_timeout_s,
                            ctx.settings.amc_timeout_margin_s,
                        )
                    ),
                )
            ok = await flow.change(
                conn,
                ctx.out,
                row,
                ctx.owner,
                status=status,
                reason=f"{how} to AMC",
                extra_events=(flow.submitted(row, info.workflow_execution_id),),
                stage=stage,
                next_action_at=when,
                **fields,
            )
        if not ok:
            log.error(
                "lost the lease of %s after AMC accepted it as %s; the reconciler decides",
                row.execution_id,
                info.workflow_execution_id,
                extra={"execution_id": row.execution_id},
            )

    @staticmethod
    async def _version_ran(conn: Connection, row: ExecRow) -> int | None:
        """The latest version pushed through us of the saved workflow the run names."""
        if row.run.workflow_id is None:
            return None
        latest = await registry.latest_version(conn, row.instance_id, row.run.workflow_id)
        return None if latest is None else latest.version

    # --- reconciling an interrupted submission -------------------------------------------

    async def reconcile(self, row: ExecRow, *, orphaned: bool = False) -> None:
        """`orphaned`: taken from an owner whose lock was gone (it may have died mid-POST)."""
        ctx = self.ctx
        assert row.submit_intent_at is not None
        token = await ctx.tokens.token(row.user_id, flow.now())
        if token is None:
            await ctx.wait_for_token(row, "no valid access token cached", unsent=False)
            return
        skew = timedelta(seconds=ctx.settings.reconcile_skew_s)
        low = row.submit_intent_at - skew
        high = max(flow.now(), row.submit_intent_at) + skew
        target = await ctx.instances.resolve(row.run)
        try:
            found = await ctx.amc.list_executions(token, target, low, high)
        except ApiError as exc:
            await failures.after_failed_call(ctx, row, token, exc, "list")
            return
        async with ctx.pool.acquire() as conn:
            known = await store.known_amc_ids(conn, [f.workflow_execution_id for f in found])
        match = logic.reconcile_match(
            found, row.run, row.submit_intent_at, ctx.settings.reconcile_skew_s, known
        )
        if match is not None:
            log.info(
                "reconciled %s: AMC already has it as %s",
                row.execution_id,
                match.workflow_execution_id,
                extra={"execution_id": row.execution_id},
            )
            await self._accepted(row, match, "reconciled with an execution already submitted")
            return
        settled = row.submit_intent_at + timedelta(seconds=ctx.settings.amc_http_timeout_s)
        if orphaned and flow.now() < settled:
            # The dead owner's POST may still reach AMC: look again once it cannot.
            async with ctx.pool.acquire() as conn:
                await store.defer(conn, row.execution_id, ctx.owner, settled - flow.now())
            return
        if row.cancel_requested:
            await ctx.change(
                row,
                status=ExecutionStatus.CANCELLED,
                error=logic.error("CANCELLED", "cancelled before AMC had it"),
            )
        elif row.failures >= ctx.settings.max_transient_attempts:
            await ctx.change(
                row,
                status=ExecutionStatus.FAILED,
                error=logic.error(
                    "AMC_UNAVAILABLE",
                    f"AMC did not accept the submission after {row.failures} attempts",
                ),
            )
        else:
            await ctx.change(
                row,
                status=ExecutionStatus.QUEUED,
                reason="reconciled: AMC has no such execution; submitting again",
                next_action_at=flow.now()
                + (ctx.backoff(row.failures) if row.failures else timedelta(0)),
            )
