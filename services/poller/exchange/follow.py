"""Following submitted executions: status polls, result downloads, cancellations.

Each loop claims due rows of its stage (bounded by its task set), calls AMC with no
transaction open, and records the outcome in one transaction guarded by its lease.

Polls follow our own schedule (`poll_intervals_s`), never AMC's waitUntil. Once AMC says
SUCCEEDED, only AMC saying the results are gone, or storage refusing fresh URLs again and
again, ends the execution without them: 5xx, timeouts, throttling, an open breaker and our
own restarts only delay the download.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from posixpath import basename
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace

from services.poller import flow, logic, store
from services.poller.exchange import failure_policy, failures
from services.poller.exchange.gateway import CircuitOpenError
from services.poller.exchange.poll_writes import PollWrites
from services.poller.exchange.tokens import Token
from services.poller.instances.directory import Target
from services.poller.results.stores import ResultFile, result_context, result_key
from services.poller.rows import ExecRow
from services.poller.store import PollSeen
from services.poller.token_store import CachedToken
from services.poller.worker import Context, TaskSet
from shared.clients import ApiError, DownloadUrls, ResultsExpiredError
from shared.contract import ExecutionError, ExecutionStatus, ResultLocation

log = logging.getLogger(__name__)

# A job gets its row and the user's cached token as read with the claim (None: none cached).
Job = Callable[[ExecRow, CachedToken | None], Coroutine[Any, Any, None]]
T = TypeVar("T")
# One call about an execution at AMC: the gateway's get, download_urls or cancel.
Ask = Callable[[Token, Target, str], Awaitable[T]]


@dataclass(frozen=True)
class Asked(Generic[T]):
    """AMC's answer to a call that went through (a cancel's answer is None)."""

    answer: T


class StageLoop:
    """Claims due rows of one stage and runs `job` on each, at most `limit` at a time.

    One claim is one statement (atomic without a transaction of its own), followed on the
    same connection by one read of the claimed users' tokens: a poll makes no token query of
    its own. Each job is a span "execution <stage>" (poll, download, cancel) in its row's
    trace."""

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
        async with ctx.pool.acquire() as conn:
            rows = await store.claim_stage(conn, self.stage, ctx.claimant, room)
            tokens = await ctx.tokens.read_many(conn, (row.user_id for row in rows))
        for row in rows:
            self.tasks.spawn(self.stage, row, self.job(row, tokens.get(row.user_id)))
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
        self.poll_writes = PollWrites(ctx.pool, ctx.owner, s.poll_write_window_s)

    async def _at_amc(
        self, row: ExecRow, cached: CachedToken | None, call: failure_policy.AmcCall, ask: Ask[T]
    ) -> Asked[T] | None:
        """`ask` AMC about the row's execution with the user's token at the row's instance.
        None when the row was left to wait for a token or the failed call was applied."""
        assert row.amc_execution_id is not None
        token = self.ctx.tokens.usable(cached, flow.now())
        if token is None:
            await self.ctx.wait_for_token(row, "no valid access token cached", unsent=False)
            return None
        try:
            target = await self.ctx.instances.resolve(row.run)
            return Asked(await ask(token, target, row.amc_execution_id))
        except ApiError as exc:
            await failures.after_failed_call(self.ctx, row, token, exc, call)
            return None

    # --- polling -------------------------------------------------------------------------

    async def poll(self, row: ExecRow, cached: CachedToken | None) -> None:
        ctx = self.ctx
        timeout_s = self._timeout_s(row)
        if row.cancel_kind is None and logic.timed_out(row.submitted_at, flow.now(), timeout_s):
            await ctx.change(
                row,
                stage=store.CANCEL,
                cancel_kind="timeout",
                failures=0,
                next_action_at=flow.now(),
            )
            return
        span = trace.get_current_span()
        span.set_attribute("amc.poll_count", row.poll_count + 1)  # this poll's number, from 1
        asked = await self._at_amc(row, cached, "get", ctx.amc.get)
        if asked is None:
            return
        info = asked.answer
        span.set_attribute("amc.amc_status", info.status_text or info.status.value)
        observed = logic.interpret(info, dry_run=row.run.options.dry_run is True)
        if observed.unknown:
            ctx.amc.metrics.unknown_status.labels(info.status_text[:64]).inc()
        now = flow.now()
        fields: dict[str, Any] = {
            "amc_status": info.status_text or info.status.value,
            "poll_count": row.poll_count + 1,
            "refused_token_fp": None,
            "refused_at": None,
        }
        ended = observed.download or observed.error is not None or observed.status.is_terminal
        cancel_again = row.cancel_kind is not None and row.stage == store.POLL
        if not ended and not cancel_again and observed.status is row.status:
            # Still where it was: bookkeeping only, stored with other such polls (no event).
            await self._poll_seen(row, fields["amc_status"], now, timeout_s)
            return
        if observed.download:
            status, error = ExecutionStatus.RUNNING, None
            fields.update(
                stage=store.DOWNLOAD, amc_finished_seen_at=now, next_action_at=now, failures=0
            )
        elif observed.error is not None or observed.status.is_terminal:
            status, error = observed.status, observed.error
            if observed.status is ExecutionStatus.CANCELLED and row.cancel_kind is not None:
                status, error = self._cancelled(row)
            fields.update(amc_finished_seen_at=now)
        elif cancel_again:
            # A cancel that AMC refused or left unanswered: it runs on; try again.
            status, error = observed.status, None
            fields.update(stage=store.CANCEL, next_action_at=now + ctx.backoff(row.failures))
        else:
            status, error = observed.status, None
            fields.update(next_action_at=self._next_poll_at(row, now, timeout_s), failures=0)
        await ctx.change(row, status=status, error=error, **fields)

    def _next_poll_at(self, row: ExecRow, now: datetime, timeout_s: float) -> datetime:
        deadline = None
        if row.submitted_at is not None and row.cancel_kind is None:
            deadline = row.submitted_at + timedelta(seconds=timeout_s)
        intervals = self.ctx.settings.poll_intervals_s
        return logic.next_poll_at(now, row.poll_count + 1, intervals, deadline)

    async def _poll_seen(
        self, row: ExecRow, amc_status: str, now: datetime, timeout_s: float
    ) -> None:
        when = self._next_poll_at(row, now, timeout_s)
        seen = PollSeen(row.execution_id, amc_status, row.poll_count + 1, when)
        if not await self.poll_writes.record(seen):
            log.info(
                "lost the lease of %s during its poll; its new owner polls it",
                row.execution_id,
                extra={"execution_id": row.execution_id},
            )

    # --- downloading ---------------------------------------------------------------------

    async def download(self, row: ExecRow, cached: CachedToken | None) -> None:
        ctx = self.ctx
        try:
            asked = await self._at_amc(row, cached, "download_urls", ctx.amc.download_urls)
        except CircuitOpenError as exc:
            await self._download_later(row, f"{exc}")
            return
        if asked is None:
            return
        try:
            stored = await self._save(row, asked.answer)
        except ResultsExpiredError as exc:
            await self._urls_expired(row, exc)
            return
        except (ApiError, OSError, CircuitOpenError) as exc:
            await self._download_later(row, f"fetching the result files failed: {exc}")
            return
        ctx.amc.metrics.downloaded_bytes.inc(stored.size_bytes)
        await ctx.change(row, status=ExecutionStatus.SUCCEEDED, result=stored)

    async def _urls_expired(self, row: ExecRow, exc: ResultsExpiredError) -> None:
        """Storage refused a URL (expired: they live 10 minutes). Fresh URLs come from AMC,
        at once; only a run of refusals means the results are gone."""
        ctx = self.ctx
        refreshes = row.url_refreshes + 1
        if refreshes >= ctx.settings.max_url_refreshes:
            await self._end_without_results(
                row,
                logic.error(
                    "RESULTS_EXPIRED",
                    f"storage refused {refreshes} fresh sets of result URLs from AMC: {exc}",
                ),
            )
            return
        log.info(
            "result URL of %s refused (%s); asking AMC for fresh URLs",
            row.execution_id,
            exc,
            extra={"execution_id": row.execution_id},
        )
        await ctx.change(row, url_refreshes=refreshes, next_action_at=flow.now())

    async def _download_later(self, row: ExecRow, why: str) -> None:
        """Fetching result files failed, or the breaker is open: see download_later."""
        ctx = self.ctx
        decided = failure_policy.download_later(
            row, self._since_succeeded(row), why, None, failures.limits(ctx, row)
        )
        await failures.apply(ctx, row, decided, unsent=False)

    async def _end_without_results(self, row: ExecRow, error: ExecutionError) -> None:
        await self.ctx.change(row, status=ExecutionStatus.FAILED, error=error)

    def _timeout_s(self, row: ExecRow) -> float:
        s = self.ctx.settings
        return logic.execution_timeout_s(row.run, s.amc_execution_timeout_s, s.amc_timeout_margin_s)

    @staticmethod
    def _since_succeeded(row: ExecRow) -> timedelta:
        seen = row.amc_finished_seen_at or row.updated_at
        return flow.now() - seen

    async def _save(self, row: ExecRow, urls: DownloadUrls) -> ResultLocation:
        """Every result file (AMC splits large results, up to 5) and AMC's metadata files."""
        ctx = self.ctx
        async with contextlib.AsyncExitStack() as stack:
            results = [
                ResultFile(f"part-{i:05d}.csv", await stack.enter_async_context(ctx.amc.stream(u)))
                for i, u in enumerate(urls.results)
            ]
            metadata = [
                ResultFile(
                    f"metadata/{_file_name(u, i)}",
                    await stack.enter_async_context(ctx.amc.stream(u)),
                )
                for i, u in enumerate(urls.metadata)
            ]
            key = result_key(
                row.instance_id, row.run.workflow_label, row.created_at.date(), row.execution_id
            )
            return await ctx.results.save(key, results, metadata, result_context(row))

    # --- cancelling ----------------------------------------------------------------------

    async def cancel(self, row: ExecRow, cached: CachedToken | None) -> None:
        """PUT status CANCELLED, then read the execution back (as Amazon's client does): its
        status at AMC decides. A refused cancel is re-read and retried, never taken for
        'already finished'."""
        if await self._at_amc(row, cached, "cancel", self.ctx.amc.cancel) is None:
            return
        # Each attempt counts, accepted or not: a cancel AMC takes but never carries out ends
        # after max_transient_attempts like a refused one.
        await self.ctx.change(
            row,
            stage=store.POLL,
            refused_token_fp=None,
            refused_at=None,
            failures=row.failures + 1,
            next_action_at=flow.now(),
        )

    def _cancelled(self, row: ExecRow) -> tuple[ExecutionStatus, ExecutionError]:
        """AMC shows CANCELLED after our cancel: our reason for it."""
        if row.cancel_kind == "timeout":
            timeout = self._timeout_s(row)
            return ExecutionStatus.TIMED_OUT, logic.error(
                "TIMED_OUT", f"no result within {timeout:.0f}s; cancelled at AMC"
            )
        return ExecutionStatus.CANCELLED, logic.error("CANCELLED", "cancelled on request")


def _file_name(url: str, index: int) -> str:
    """The metadata file's own name from its URL path, when it is a plain one."""
    name = basename(urlsplit(url).path)
    if name and name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        return name
    return f"metadata-{index:02d}.json"
