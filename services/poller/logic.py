"""The poller's rules, without I/O: what a request means, when to poll, how to read AMC.

What a failed call means is failure_policy.py."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.clients import (
    AmcStatus,
    ChannelStatus,
    ExecutionInfo,
    ExecutionOptions,
    ExecutionRequest,
    OutputChannel,
)
from shared.clients.amc_models import parameter_texts
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


def share_of(event: RequestEvent) -> tuple[str | None, int | None]:
    """The group whose runs share a daily budget at the instance, and that budget: a
    collection's weeks count together (None for other runs, which come first anyway)."""
    if isinstance(event, WeekRequested):
        return str(event.collection_id), event.daily_share
    return None, None


# The run's fields that AMC's create request takes under the same names.
_REQUEST_FIELDS = frozenset(
    {
        "workflow_id",
        "sql_query",
        "time_window_type",
        "time_window_start",
        "time_window_end",
        "time_window_time_zone",
    }
)


def amc_request(run: WorkflowRun, sandbox: bool = False) -> ExecutionRequest:
    """The create request for a run. A sandbox instance holds synthetic data only, and AMC
    runs nothing there that does not ask for it (requireSyntheticData). The run's options
    are AMC's options under the same names."""
    options = run.options.model_dump()
    if sandbox:
        options["require_synthetic_data"] = True
    return ExecutionRequest(
        **run.model_dump(include=set(_REQUEST_FIELDS)),
        parameter_values=run.parameters,
        options=ExecutionOptions(**options),
    )


def execution_timeout_s(run: WorkflowRun, default_s: float, margin_s: float) -> float:
    """How long after submission the poller gives up on a run: AMC's own timeout for it
    (plus time it may spend waiting to start), or the deployment's default."""
    own = run.options.workflow_execution_timeout_s
    return default_s if own is None else own + margin_s


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
    """What one AMC status answer means for our execution. `unknown`: AMC sent a status that
    neither Amazon's OpenAPI nor its own client names (logged and counted by the caller)."""

    status: ExecutionStatus
    download: bool = False
    error: ExecutionError | None = None
    unknown: bool = False


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
        case AmcStatus.RUNNING | AmcStatus.PUBLISHING:
            # PUBLISHING: Amazon's own client keeps waiting on it, as on PENDING and RUNNING.
            return Observed(ExecutionStatus.RUNNING)
        case AmcStatus.UNKNOWN:
            # Not an end we know of: keep following it, never past the execution timeout.
            return Observed(ExecutionStatus.RUNNING, unknown=True)
        case AmcStatus.SUCCEEDED:
            blocked = download_blocked(info)
            if blocked is not None:
                return Observed(ExecutionStatus.FAILED, error=blocked)
            # Public SUCCEEDED waits for the download; until then the execution stays RUNNING.
            return Observed(ExecutionStatus.RUNNING, download=True)
        case AmcStatus.CANCELLED:
            message = info.error_message or "cancelled at AMC"
            return Observed(
                ExecutionStatus.CANCELLED,
                error=ExecutionError(code="CANCELLED", message=message, retryable=False),
            )
        case AmcStatus.REJECTED:
            # Amazon's own client ends on REJECTED as on FAILED. The execute-workflow guide's
            # rejection ("too many workflows have already been run against the same input
            # data sources ...") would come again for the same query, and each try spends a
            # slot of the day's cap: not retryable.
            reason = info.error_message or "no reason given"
            return Observed(
                ExecutionStatus.FAILED,
                error=ExecutionError(
                    code="AMC_REJECTED",
                    message=f"AMC rejected the execution: {reason}"[:4000],
                    retryable=False,
                ),
            )
        case _:
            message = info.error_message or "AMC reported the execution FAILED"
            return Observed(
                ExecutionStatus.FAILED,
                error=ExecutionError(code="AMC_FAILED", message=message[:4000], retryable=True),
            )


def download_blocked(info: ExecutionInfo) -> ExecutionError | None:
    """The error for a SUCCEEDED execution whose results AMC will not hand out through
    downloadUrls, or None when they can be downloaded (or AMC sent no outputChannels).

    Amazon's OpenAPI: outputChannels lists every channel of the instance; a DOWNLOAD channel
    UNAVAILABLE or FAILED "is not and will not be available", so waiting for URLs is futile.
    A list without a DOWNLOAD entry means the instance has no such channel. Not retryable:
    AMC holds a finished run whose results went elsewhere; a second run would go the same
    way (and spend the day's cap)."""
    channels = info.output_channels
    if channels is None:
        return None
    download = next((c for c in channels if c.type == "DOWNLOAD"), None)
    if download is not None and download.status not in (
        ChannelStatus.UNAVAILABLE,
        ChannelStatus.FAILED,
    ):
        return None
    if download is None:
        why = "AMC lists no DOWNLOAD output channel for this instance"
    else:
        why = f"AMC's DOWNLOAD output channel is {download.status.value}"
        if download.status_reason:
            why += f": {download.status_reason}"
    went = [_where(c, info.output_s3_uri) for c in channels if c.type != "DOWNLOAD"]
    went = [w for w in went if w]
    where = "; ".join(went) if went else "AMC names no other channel that received them"
    return ExecutionError(
        code="RESULTS_NOT_DOWNLOADABLE",
        message=f"the execution SUCCEEDED at AMC but its results cannot be downloaded ({why}). "
        f"Where they went: {where}"[:4000],
        retryable=False,
    )


def _where(channel: OutputChannel, output_s3_uri: str | None) -> str:
    state = channel.status.value
    if channel.status_reason:
        state += f" ({channel.status_reason})"
    if channel.type == "PUBLISH":
        # OutputChannelType PUBLISH: "published by AMC to the configured output bucket to the
        # location indicated by the outputS3URI"; an "N/A" (as in samples) names no place.
        place = output_s3_uri if output_s3_uri and output_s3_uri != "N/A" else "its bucket"
        return f"PUBLISH {state}: the instance's output bucket, {place}"
    if channel.type == "ACR":
        page = f", {channel.acr_detail_page_url}" if channel.acr_detail_page_url else ""
        member = f" member {channel.acr_member_id}" if channel.acr_member_id else ""
        return f"ACR {state}: AWS Clean Rooms{member}{page}"
    return f"{channel.type} {state}"


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


def daily_cap_reason(instance_id: str, used: int, daily_cap: int) -> str:
    """What an operator reads on a run held back by the instance's daily cap."""
    return (
        f"waiting for tomorrow's cap: {used}/{daily_cap} used today at instance {instance_id} "
        "(AMC's daily cap on executions created through the API); submitted after 00:00 UTC, "
        "scheduled and external runs first. If Amazon raised this instance's cap, set it with "
        f"`amcctl instances update {instance_id} --max-daily N`"
    )


def share_reason(collection_id: str, used: int, share: int) -> str:
    """What an operator reads on a collection week held back by its collection's share."""
    return (
        f"waiting for tomorrow's share: collection {collection_id} has used {used}/{share} of "
        "its daily share of the instance's executions today; its next weeks are submitted "
        "after 00:00 UTC"
    )


# A Retry-After this long is not request throttling (AMC's rate limits clear in seconds): it
# is what a refusal for the day's cap looks like when another tool spent the instance's cap.
LONG_RETRY_AFTER_S = 15 * 60


def throttled_reason(retry_after_s: float, until: datetime, used: int, daily_cap: int) -> str:
    """What an operator reads on a run AMC refused with 429 and told to wait."""
    wait = f"AMC refused the submission (429) and asked to wait {retry_after_s:.0f}s"
    if retry_after_s < LONG_RETRY_AFTER_S:
        return f"{wait}; retrying at {until:%H:%M:%S} UTC"
    counted = f"{used}/{daily_cap}" if daily_cap else f"{used} (no cap set)"
    return (
        f"{wait}, until {until:%Y-%m-%d %H:%M} UTC: AMC's daily cap looks used up at the "
        f"instance although this service counts {counted} today, so another tool (or the AMC "
        "console) may be spending the same cap. Amazon does not publish how AMC refuses past "
        "the cap; the run is submitted again then"
    )
