"""The poller's rules, without I/O: what a request means, when to poll, how to read AMC."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.clients import (
    AmcStatus,
    ApiError,
    ClientRequestError,
    ExecutionInfo,
    ExecutionOptions,
    ExecutionRequest,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.clients.amc import parameter_texts
from shared.contract import (
    ExecutionError,
    ExecutionRequested,
    ExecutionStatus,
    ScheduleDue,
    WeekRequested,
    WorkflowRun,
)

RequestEvent = ScheduleDue | WeekRequested | ExecutionRequested

# --- requests ----------------------------------------------------------------------------


def request_attempt(event: RequestEvent) -> int:
    """A week or a schedule run retried under the same origin is a new execution; an external
    request is one."""
    return event.attempt if isinstance(event, WeekRequested | ScheduleDue) else 1


def amc_request(run: WorkflowRun, sandbox: bool = False) -> ExecutionRequest:
    """The create request for a run. A sandbox instance holds synthetic data only, and AMC
    runs nothing there that does not ask for it (requireSyntheticData)."""
    options = run.options
    return ExecutionRequest(
        workflow_id=run.workflow_id,
        sql_query=run.sql_query,
        time_window_type=run.time_window_type,
        time_window_start=run.time_window_start,
        time_window_end=run.time_window_end,
        time_window_time_zone=run.time_window_time_zone,
        parameter_values=run.parameters,
        options=ExecutionOptions(
            workflow_execution_timeout_s=options.workflow_execution_timeout_s,
            ignore_data_gaps=options.ignore_data_gaps,
            require_synthetic_data=True if sandbox else options.require_synthetic_data,
            disable_aggregation_controls=options.disable_aggregation_controls,
            dry_run=options.dry_run,
        ),
    )


def execution_timeout_s(run: WorkflowRun, default_s: float, margin_s: float) -> float:
    """How long after submission the poller gives up on a run: AMC's own timeout for it
    (plus time it may spend waiting to start), or the deployment's default."""
    own = run.options.workflow_execution_timeout_s
    return default_s if own is None else own + margin_s


# --- tokens ------------------------------------------------------------------------------

_NO_TOKEN = re.compile(r"no (refresh )?token|not registered|unknown user", re.IGNORECASE)


def reauth_error(reason: str) -> ExecutionError:
    """The error for a user the token service cannot serve: unknown, or grant revoked."""
    code: Literal["UNKNOWN_USER", "REAUTH_REQUIRED"] = (
        "UNKNOWN_USER" if _NO_TOKEN.search(reason) else "REAUTH_REQUIRED"
    )
    text = reason or "the user must authorize again"
    return ExecutionError(code=code, message=f"token service: {text}"[:4000], retryable=False)


def token_usable(
    expires_at: datetime | None, invalid: bool, now: datetime, margin_s: float
) -> bool:
    return expires_at is not None and not invalid and expires_at > now + timedelta(seconds=margin_s)


# --- calling AMC -------------------------------------------------------------------------

CallFailure = Literal["unauthorized", "rate_limited", "transient", "rejected"]


def classify(error: ApiError) -> CallFailure:
    """What a failed AMC call means for the execution that made it."""
    if isinstance(error, UnauthorizedError):
        return "unauthorized"
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if isinstance(error, ServerError | TransportError):
        return "transient"
    if isinstance(error, ClientRequestError):
        return "rejected"
    return "transient"  # an unreadable 2xx body or an unexpected status: try again later


def backoff_s(
    failures: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    step = min(cap_s, base_s * 2 ** max(failures - 1, 0))
    return float(step / 2 + (rng or random).uniform(0, step / 2))


# --- polling -----------------------------------------------------------------------------


def poll_delay_s(poll_count: int, intervals: Sequence[float]) -> float:
    """Short at first, backing off for long executions; the last interval repeats."""
    return intervals[min(poll_count, len(intervals) - 1)]


def next_poll_at(
    now: datetime,
    poll_count: int,
    intervals: Sequence[float],
    deadline: datetime | None = None,
) -> datetime:
    """When to look again: our own schedule. AMC's waitUntil is not used: it only says when a
    run may start (AMC sets it an hour before createTime), nothing about when it will end.
    Never later than the deadline (the execution timeout), which must be noticed on time."""
    when = now + timedelta(seconds=poll_delay_s(poll_count, intervals))
    if deadline is not None:
        when = min(when, max(deadline, now))
    return when


@dataclass(frozen=True)
class Observed:
    """What one AMC status answer means for our execution."""

    status: ExecutionStatus
    download: bool = False
    error: ExecutionError | None = None


def interpret(info: ExecutionInfo, dry_run: bool = False) -> Observed:
    """`dry_run`: AMC's dryRun "will not generate output results", so its SUCCEEDED is the
    end, and its FAILED is AMC's verdict on the run, which the same run sent again keeps."""
    if dry_run and info.status is AmcStatus.SUCCEEDED:
        return Observed(ExecutionStatus.SUCCEEDED)
    if dry_run and info.status is AmcStatus.FAILED:
        message = info.error_message or "AMC's dry run found the run invalid"
        return Observed(
            ExecutionStatus.FAILED,
            error=ExecutionError(code="AMC_VALIDATION", message=message[:4000], retryable=False),
        )
    match info.status:
        case AmcStatus.PENDING:
            return Observed(ExecutionStatus.PENDING)
        case AmcStatus.RUNNING | AmcStatus.UNKNOWN:
            # A status AMC may add one day is not an end: keep following (the client logs it).
            return Observed(ExecutionStatus.RUNNING)
        case AmcStatus.SUCCEEDED:
            # Public SUCCEEDED waits for the download; until then the execution stays RUNNING.
            return Observed(ExecutionStatus.RUNNING, download=True)
        case AmcStatus.CANCELLED:
            message = info.error_message or "cancelled at AMC"
            return Observed(
                ExecutionStatus.CANCELLED,
                error=ExecutionError(code="CANCELLED", message=message, retryable=False),
            )
        case _:
            message = info.error_message or "AMC reported the execution FAILED"
            return Observed(
                ExecutionStatus.FAILED,
                error=ExecutionError(code="AMC_FAILED", message=message[:4000], retryable=True),
            )


def timed_out(submitted_at: datetime | None, now: datetime, timeout_s: float) -> bool:
    return submitted_at is not None and now - submitted_at > timedelta(seconds=timeout_s)


def error(
    code: Literal[
        "AMC_VALIDATION",
        "UNKNOWN_INSTANCE",
        "AMC_UNAVAILABLE",
        "AMC_ACCESS_DENIED",
        "TIMED_OUT",
        "RESULTS_EXPIRED",
        "DOWNLOAD_FAILED",
        "SUBMISSION_UNKNOWN",
        "CANCELLED",
        "INTERNAL",
    ],
    message: str,
) -> ExecutionError:
    """Retryable means a requester may ask for a new execution. Never so once AMC may hold
    one for this request (DOWNLOAD_FAILED, SUBMISSION_UNKNOWN): a second run would be a
    duplicate; fetching a result again is the poller's own job."""
    retryable = code in ("AMC_UNAVAILABLE", "TIMED_OUT", "INTERNAL")
    return ExecutionError(code=code, message=message[:4000], retryable=retryable)


# --- exactly once: reconciling an interrupted submission ---------------------------------


def window_texts(run: WorkflowRun) -> tuple[str | None, str | None]:
    """The window bounds as sent (wall time in the window's zone), which AMC echoes back in
    timeWindowStartOriginal / timeWindowEndOriginal."""
    body = amc_request(run).to_body()
    start, end = body.get("timeWindowStart"), body.get("timeWindowEnd")
    return (start if isinstance(start, str) else None, end if isinstance(end, str) else None)


def reconcile_match(
    candidates: Iterable[ExecutionInfo],
    run: WorkflowRun,
    intent_at: datetime,
    skew_s: float,
    known_amc_ids: set[str],
) -> ExecutionInfo | None:
    """The AMC execution our interrupted POST created, if AMC has one.

    Matched on what AMC returns for an execution: the workflow, the window as sent and its
    zone (the *Original fields), the parameter values as sent, createTime no earlier than the
    intent (less the clock allowance), and not already the AMC execution of another of our
    rows. The earliest such one is ours: a later one would have needed a second POST, which
    only reconciling allows."""
    start, end = window_texts(run)
    parameters = parameter_texts(run.parameters)
    earliest = intent_at - timedelta(seconds=skew_s)
    matches = [
        c
        for c in candidates
        if (c.workflow_id == run.workflow_id if run.workflow_id else _transient(c.workflow_id))
        and c.workflow_execution_id not in known_amc_ids
        and c.time_window_start_original == start
        and c.time_window_end_original == end
        and (c.time_window_time_zone_original or "UTC") == run.time_window_time_zone
        and c.parameter_values == parameters
        and (c.create_time is None or c.create_time >= earliest)
    ]
    if not matches:
        return None
    return min(matches, key=lambda c: (c.create_time is None, c.create_time))


def _transient(workflow_id: str) -> bool:
    """AMC names an ad hoc run's workflow transient_<uuid> (ad-hoc-workflow.md's sample)."""
    return workflow_id.startswith("transient_")


# --- results -----------------------------------------------------------------------------


class CsvRowCounter:
    """Counts data rows of a CSV streamed in chunks (header excluded)."""

    def __init__(self) -> None:
        self.newlines = 0
        self.size = 0
        self._last = b""

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self.newlines += chunk.count(b"\n")
            self.size += len(chunk)
            self._last = chunk[-1:]

    @property
    def rows(self) -> int:
        lines = self.newlines + (1 if self.size and self._last != b"\n" else 0)
        return max(lines - 1, 0)


def daily_cap_reason(instance_id: str, daily_cap: int) -> str:
    """What an operator reads on a run held back by the instance's daily cap."""
    return (
        f"instance {instance_id} has had its {daily_cap} executions for today (AMC's daily "
        "cap on executions created through the API); this run is submitted after 00:00 UTC. "
        "If Amazon raised this instance's cap, set it with `amcctl instances update "
        f"{instance_id} --max-daily N`"
    )
