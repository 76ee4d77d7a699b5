"""Following submitted executions: status polls, result downloads, cancellations.

Each loop claims due rows of its stage (bounded by its task set), calls AMC with no
transaction open, and records the outcome in one transaction guarded by its lease.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from opentelemetry import trace

from services.poller import flow, logic, store
from services.poller.gateway import Token
from services.poller.results import StoredResult
from services.poller.store import ExecRow
from services.poller.worker import Context, TaskSet
from shared.clients import ApiError, ResultsExpiredError
from shared.contract import ExecutionError, ExecutionStatus, ResultLocation

log = logging.getLogger(__name__)

Job = Callable[[ExecRow], Coroutine[Any, Any, None]]


class StageLoop:
    """Claims due rows of one stage and runs `job` on each, at most `limit` at a time.

    Each job is a span "execution <stage>" (poll, download, cancel) in its row's trace."""

    def __init__(self, ctx: Context, stage: str, endpoint: str, limit: int, job: Job) -> None:
        self.ctx = ctx
        self.stage = stage
        self.endpoint = endpoint
        self.tasks = TaskSet(limit, stage, ctx.tracer)
        self.job = job

    async def step(self) -> bool:
        ctx = self.ctx
        room = min(self.tasks.room, ctx.settings.claim_batch_size)
        if room <= 0 or ctx.amc.open(self.endpoint):
            return False
        async with ctx.pool.acquire() as conn, conn.transaction():
            rows = await store.claim_stage(conn, self.stage, ctx.owner, ctx.lease, room)
        for row in rows:
            self.tasks.spawn(self.stage, row, self.job(row))
        return bool(rows)


class Follower:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.polls = StageLoop(ctx, store.POLL, "get", s.max_concurrent_polls, self.poll)
        self.downloads = StageLoop(
            ctx, store.DOWNLOAD, "download_urls", max(s.max_concurrent_polls // 5, 2), self.download
        )
        self.cancels = StageLoop(ctx, store.CANCEL, "cancel", 10, self.cancel)

    # --- shared outcomes -----------------------------------------------------------------

    async def _failed_call(
        self, row: ExecRow, token: Token, exc: ApiError, *, give_up: ExecutionError
    ) -> None:
        """401: wait for a token; 429: after Retry-After; 5xx/timeout: back off, then give up
        after max_transient_attempts; other 4xx: the execution fails with AMC's message."""
        ctx = self.ctx
        kind = logic.classify(exc)
        async with ctx.pool.acquire() as conn, conn.transaction():
            if kind == "unauthorized":
                await store.invalidate_token(conn, row.user_id, token.ciphertext)
                await flow.wait_for_token(conn, ctx.out, row, ctx.owner, str(exc), unsent=False)
            elif kind == "rate_limited":
                retry_after = getattr(exc, "retry_after", 1.0)
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    next_action_at=flow.now() + timedelta(seconds=retry_after),
                )
            elif kind == "transient" and row.failures + 1 < ctx.settings.max_transient_attempts:
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    failures=row.failures + 1,
                    next_action_at=flow.now() + ctx.backoff(row.failures + 1),
                )
            else:
                error = give_up if kind == "transient" else logic.error("AMC_VALIDATION", str(exc))
                if kind == "rejected" and give_up.code == "DOWNLOAD_FAILED":
                    error = give_up
                await flow.change(
                    conn, ctx.out, row, ctx.owner, status=self._failed_status(error), error=error
                )

    @staticmethod
    def _failed_status(error: ExecutionError) -> ExecutionStatus:
        if error.code == "CANCELLED":
            return ExecutionStatus.CANCELLED
        if error.code == "TIMED_OUT":
            return ExecutionStatus.TIMED_OUT
        return ExecutionStatus.FAILED

    async def _token_or_wait(self, row: ExecRow) -> Token | None:
        token = await self.ctx.amc.token(row.user_id, flow.now())
        if token is None:
            async with self.ctx.pool.acquire() as conn, conn.transaction():
                await flow.wait_for_token(
                    conn,
                    self.ctx.out,
                    row,
                    self.ctx.owner,
                    "no valid access token cached",
                    unsent=False,
                )
        return token

    # --- polling -------------------------------------------------------------------------

    async def poll(self, row: ExecRow) -> None:
        ctx = self.ctx
        s = ctx.settings
        assert row.amc_execution_id is not None
        if logic.timed_out(row.submitted_at, flow.now(), s.amc_execution_timeout_s):
            async with ctx.pool.acquire() as conn, conn.transaction():
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    stage=store.CANCEL,
                    cancel_kind="timeout",
                    next_action_at=flow.now(),
                )
            return
        token = await self._token_or_wait(row)
        if token is None:
            return
        span = trace.get_current_span()
        span.set_attribute("amc.poll_count", row.poll_count + 1)  # this poll's number, from 1
        try:
            info = await ctx.amc.get(token, logic.amc_account(row.run), row.amc_execution_id)
        except ApiError as exc:
            gone = logic.error("AMC_UNAVAILABLE", f"AMC status unavailable: {exc}")
            await self._failed_call(row, token, exc, give_up=gone)
            return
        span.set_attribute("amc.amc_status", info.status.value)
        observed = logic.interpret(info)
        now = flow.now()
        async with ctx.pool.acquire() as conn, conn.transaction():
            common: dict[str, Any] = {
                "amc_status": info.status.value,
                "poll_count": row.poll_count + 1,
                "failures": 0,
            }
            if observed.download:
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    status=ExecutionStatus.RUNNING,
                    stage=store.DOWNLOAD,
                    amc_finished_seen_at=now,
                    next_action_at=now,
                    **common,
                )
            elif observed.error is not None:
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    status=observed.status,
                    error=observed.error,
                    amc_finished_seen_at=now,
                    **common,
                )
            else:
                deadline = None
                if row.submitted_at is not None:
                    deadline = row.submitted_at + timedelta(seconds=s.amc_execution_timeout_s)
                when = logic.next_poll_at(
                    now,
                    row.poll_count + 1,
                    s.poll_intervals_s,
                    info.wait_until,
                    s.min_poll_gap_s,
                    deadline,
                )
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    status=observed.status,
                    next_action_at=when,
                    **common,
                )

    # --- downloading ---------------------------------------------------------------------

    async def download(self, row: ExecRow) -> None:
        ctx = self.ctx
        assert row.amc_execution_id is not None
        token = await self._token_or_wait(row)
        if token is None:
            return
        account = logic.amc_account(row.run)
        try:
            urls = await ctx.amc.download_urls(token, account, row.amc_execution_id)
            stored = await self._save(row, urls)
        except ResultsExpiredError as exc:
            async with ctx.pool.acquire() as conn, conn.transaction():
                await flow.change(
                    conn,
                    ctx.out,
                    row,
                    ctx.owner,
                    status=ExecutionStatus.FAILED,
                    error=logic.error("RESULTS_EXPIRED", f"AMC no longer has the results: {exc}"),
                )
            return
        except (ApiError, OSError) as exc:
            api_error = exc if isinstance(exc, ApiError) else ApiError(f"result store: {exc}")
            give_up = logic.error("DOWNLOAD_FAILED", f"downloading the results failed: {exc}")
            if (
                row.failures + 1 >= ctx.settings.max_download_attempts
                and logic.classify(api_error) != "unauthorized"
            ):
                async with ctx.pool.acquire() as conn, conn.transaction():
                    await flow.change(
                        conn,
                        ctx.out,
                        row,
                        ctx.owner,
                        status=ExecutionStatus.FAILED,
                        error=give_up,
                    )
                return
            await self._failed_call(row, token, api_error, give_up=give_up)
            return
        result = ResultLocation(
            uri=stored.uri, row_count=stored.row_count, size_bytes=stored.size_bytes
        )
        ctx.amc.metrics.downloaded_bytes.inc(stored.size_bytes)
        async with ctx.pool.acquire() as conn, conn.transaction():
            await flow.change(
                conn, ctx.out, row, ctx.owner, status=ExecutionStatus.SUCCEEDED, result=result
            )

    async def _save(self, row: ExecRow, urls: list[str]) -> StoredResult:
        ctx = self.ctx
        suffix = "csv" if row.run.output_format == "CSV" else "parquet"
        async with contextlib.AsyncExitStack() as stack:
            files = [
                (f"part-{index:05d}.{suffix}", await stack.enter_async_context(ctx.amc.stream(url)))
                for index, url in enumerate(urls)
            ]
            key = f"{row.instance_id}/{row.execution_id}"
            return await ctx.results.save(key, files, row.run.output_format)

    # --- cancelling ----------------------------------------------------------------------

    async def cancel(self, row: ExecRow) -> None:
        ctx = self.ctx
        assert row.amc_execution_id is not None
        timeout = row.cancel_kind == "timeout"
        token = await self._token_or_wait(row)
        if token is None:
            return
        try:
            await ctx.amc.cancel(token, logic.amc_account(row.run), row.amc_execution_id)
        except ApiError as exc:
            if logic.classify(exc) == "rejected":
                # Not cancellable any more (it finished meanwhile): its status decides.
                async with ctx.pool.acquire() as conn, conn.transaction():
                    await flow.change(
                        conn,
                        ctx.out,
                        row,
                        ctx.owner,
                        stage=store.POLL,
                        next_action_at=flow.now(),
                    )
                return
            give_up = logic.error("AMC_UNAVAILABLE", f"cancelling at AMC failed: {exc}")
            await self._failed_call(row, token, exc, give_up=give_up)
            return
        if timeout:
            status = ExecutionStatus.TIMED_OUT
            error = logic.error(
                "TIMED_OUT",
                f"no result within {ctx.settings.amc_execution_timeout_s:.0f}s; cancelled at AMC",
            )
        else:
            status = ExecutionStatus.CANCELLED
            error = logic.error("CANCELLED", "cancelled on request")
        async with ctx.pool.acquire() as conn, conn.transaction():
            await flow.change(conn, ctx.out, row, ctx.owner, status=status, error=error)
