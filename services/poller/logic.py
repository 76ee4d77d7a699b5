"""The poller's rules, without I/O: what a request means, when to poll, how to read AMC."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.poller.rows import ExecRow
from shared.clients import (
    AmcStatus,
    ApiError,
    ChannelStatus,
    ClientRequestError,
    ExecutionInfo,
    ExecutionOptions,
    ExecutionRequest,
    OutputChannel,
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


def share_of(event: RequestEvent) -> tuple[str | None, int | None]:
    """The group whose runs share a daily budget at the instance, and that budget: a
    collection's weeks count together (None for other runs, which come first anyway)."""
    if isinstance(event, WeekRequested):
        return str(event.collection_id), event.daily_share
    return None, None


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

# A 403 that blames the token, not the user's rights. AMC's OpenAPI gives 401 for a user
# "not authenticated" and 403 for "no access to a specified resource" (docs/amc), while
# Amazon's guides say expired credentials answer 403 (issue 20); Amazon publishes no exact
# body for that case that we could find, so the answer's own words decide: a token (or
# "credentials") said to be expired, invalid or revoked.
_TOKEN_WORDS = re.compile(r"token|credential", re.IGNORECASE)
_REFUSED_WORDS = re.compile(r"expired|invalid|revoked|not valid", re.IGNORECASE)


def token_refused(error: ApiError) -> bool:
    """AMC refused the access token itself: a newer token may pass."""
    if isinstance(error, UnauthorizedError):
        return True
    if isinstance(error, ClientRequestError) and error.status == 403:
        said = f"{error.code or ''} {error.message}"
        return bool(_TOKEN_WORDS.search(said) and _REFUSED_WORDS.search(said))
    return False


def classify(error: ApiError) -> CallFailure:
    """What a failed AMC call means for the execution that made it."""
    if token_refused(error):
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


def throttle_wait_s(
    server_named: float | None,
    consecutive: int,
    base_s: float,
    cap_s: float,
    rng: random.Random | None = None,
) -> float:
    """How long to wait after a 429. The server's Retry-After when it sent one; otherwise
    exponential backoff with jitter over the consecutive throttles (1 for the first), as
    Amazon's rate-limiting guide recommends for 429s (rate-limiting.md: "backoff for 2
    seconds ... 4 seconds ... 8 seconds", with a maximum delay; jitter per the AWS
    architecture blog it links, "Exponential Backoff And Jitter")."""
    if server_named is not None:
        return server_named
    return backoff_s(consecutive, base_s, cap_s, rng)


# --- what a failed AMC call means ---------------------------------------------------------

AmcCall = Literal["create", "list", "get", "cancel", "download_urls"]


@dataclass(frozen=True)
class FailureLimits:
    """The deployment's limits the policy applies (PollerSettings), and the row's timeout."""

    max_transient_attempts: int
    reconcile_give_up_s: float
    results_unavailable_grace_s: float
    download_give_up_s: float
    timeout_s: float


@dataclass(frozen=True)
class AfterFailure:
    """What becomes of an execution after a failed call; the first that applies:

    - `refused_fp`: AMC refused that access token: wait for a newer one, then retry once;
    - `error`: the execution ends with it;
    - `reconcile`: a submission AMC may hold: it stays SUBMITTING, and AMC's list decides
      after the delay;
    - otherwise the row changes by `status`/`reason`/`fields` and is taken up again after
      the delay.

    The delay is `after_s`, or (None) a backoff on `backoff_on` failures. `failures`, when
    set, is the row's new count of failed attempts."""

    refused_fp: str | None = None
    error: ExecutionError | None = None
    reconcile: bool = False
    status: ExecutionStatus | None = None
    reason: str | None = None
    failures: int | None = None
    after_s: float | None = None
    backoff_on: int = 1
    fields: dict[str, object] = field(default_factory=dict)
    warning: str | None = None
    # AMC answered the submission 429 and asked to wait this long: the run shows why it waits
    # (a long wait otherwise looks like a stuck run; see throttled_reason).
    throttled_s: float | None = None


def after_failure(
    call: AmcCall,
    exc: ApiError,
    row: ExecRow,
    token_fp: str,
    limits: FailureLimits,
    now: datetime,
    token_issued_at: datetime | None = None,
) -> AfterFailure:
    """What a failed AMC call means for the execution that made it: the one rule for every
    call the poller makes (submitting, reconciling, polling, cancelling, asking for results).
    """
    kind = classify(exc)
    if kind == "unauthorized":
        return after_refusal(exc, row, token_fp, token_issued_at)
    retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
    failures = row.failures + 1
    match call:
        case "create":
            if kind == "rate_limited":
                wait = retry_after or 1.0
                return AfterFailure(
                    status=ExecutionStatus.QUEUED,
                    reason=f"AMC throttled the submission; retrying after {wait:.1f}s",
                    after_s=wait,
                    throttled_s=wait,
                )
            if kind == "rejected":
                return AfterFailure(error=error("AMC_VALIDATION", exc.message))
            # 5xx or no answer: AMC may have created it; the reconciler looks after the backoff.
            return AfterFailure(
                reconcile=True,
                failures=failures,
                backoff_on=failures,
                warning=f"submission had no clear answer ({exc}); will reconcile",
            )
        case "list":
            waited = now - (row.submit_intent_at or now)
            if waited > timedelta(seconds=limits.reconcile_give_up_s):
                # Submitting again could make a second execution; waiting longer could wait
                # forever. Stop, and say exactly what an operator has to look for at AMC.
                intent = (row.submit_intent_at or now).isoformat()
                return AfterFailure(
                    error=error(
                        "SUBMISSION_UNKNOWN",
                        f"AMC gave no clear answer to the submission and refused to list its "
                        f"executions for {waited.total_seconds():.0f}s ({exc}); not submitted "
                        f"again, so that it never runs twice. Look at AMC for an execution of "
                        f"workflow {row.run.workflow_id} created around {intent} on instance "
                        f"{row.instance_id}",
                    )
                )
            # Keep the row SUBMITTING while AMC may hold the execution; look again later.
            return AfterFailure(
                reconcile=True,
                after_s=retry_after,
                backoff_on=failures,
                warning=f"could not reconcile yet: {exc}",
            )
        case "get":
            if kind == "rate_limited":
                return AfterFailure(after_s=retry_after)
            if kind == "transient" and failures < limits.max_transient_attempts:
                return AfterFailure(failures=failures, backoff_on=failures)
            if kind == "transient":
                return AfterFailure(
                    error=error("AMC_UNAVAILABLE", f"AMC status unavailable: {exc}")
                )
            return AfterFailure(error=error("AMC_VALIDATION", str(exc)))
        case "cancel":
            if kind == "rate_limited":
                return AfterFailure(after_s=retry_after)
            if failures < limits.max_transient_attempts:
                # Read it back: if it ended meanwhile its status decides; if it still runs,
                # the poll sends it back here after a backoff.
                return AfterFailure(fields={"stage": "poll"}, failures=failures, after_s=0.0)
            if row.cancel_kind == "timeout":
                return AfterFailure(
                    error=error(
                        "TIMED_OUT",
                        f"no result within {limits.timeout_s:.0f}s; AMC refused to cancel it "
                        f"{failures} times (it may still hold a slot until it ends): {exc}",
                    )
                )
            return AfterFailure(
                reason=f"AMC refused to cancel it {failures} times; following it to its end: {exc}",
                fields={"stage": "poll", "cancel_kind": None},
                failures=0,
                after_s=0.0,
            )
        case "download_urls":
            since = now - (row.amc_finished_seen_at or row.updated_at)
            # A 4xx ("unavailable for download") past the grace after SUCCEEDED means AMC no
            # longer has the results; the rest only delays the download.
            if kind == "rejected" and since > timedelta(seconds=limits.results_unavailable_grace_s):
                return AfterFailure(
                    error=error("RESULTS_EXPIRED", f"AMC no longer has the results: {exc}")
                )
            return download_later(
                row, since, f"asking AMC for result URLs failed: {exc}", retry_after, limits
            )


def download_later(
    row: ExecRow, since: timedelta, why: str, retry_after_s: float | None, limits: FailureLimits
) -> AfterFailure:
    """A transient failure after SUCCEEDED: back off and try again, until the results cannot
    be expected any more (download_give_up_s)."""
    if since > timedelta(seconds=limits.download_give_up_s):
        hours = limits.download_give_up_s / 3600
        return AfterFailure(
            error=error("DOWNLOAD_FAILED", f"no result after trying for {hours:g} hours: {why}")
        )
    return AfterFailure(
        failures=row.failures + 1,
        after_s=retry_after_s,
        backoff_on=row.failures + 1,
        warning=f"download will be retried: {why}",
    )


def after_refusal(
    exc: ApiError, row: ExecRow, token_fp: str, token_issued_at: datetime | None = None
) -> AfterFailure:
    """AMC refused the access token. The first refusal, or one of the very token already
    refused (a call that was on its way), waits for a newer token and retries once, as
    Amazon's own client retries after a refresh; a refusal of a newer token means the user
    has no access: the execution fails, naming the token refused (by fingerprint).

    A token issued before the first refusal (`token_issued_at` before the row's
    `refused_at`) is not newer: a revocation withdraws all of a user's access tokens, so its
    refusal says nothing of the user's access and waits for a newer token again."""
    first = row.refused_token_fp
    held_before = (
        token_issued_at is not None
        and row.refused_at is not None
        and token_issued_at < row.refused_at
    )
    if first is None or first == token_fp or held_before:
        return AfterFailure(refused_fp=token_fp, reason=f"AMC refused access token {token_fp}")
    return AfterFailure(
        error=ExecutionError(
            code="AMC_ACCESS_DENIED",
            message=(
                f"AMC refused user {row.user_id} access to instance {row.instance_id} with "
                f"access token {token_fp}, refreshed after AMC refused token {first}; check "
                f"the user's AMC permissions and the advertiser/marketplace ids. {exc}"
            )[:4000],
            retryable=False,
        )
    )


def waiting_reason(refused_fp: str, wait_s: float) -> str:
    """What an operator reads on a run waiting for a token newer than the one AMC refused."""
    return (
        f"AMC refused access token {refused_fp}; waiting up to {wait_s:.0f}s for a newer one "
        "from the token service, then retrying once"
    )


def refused_wait_error(refused_fp: str, wait_s: float) -> ExecutionError:
    return ExecutionError(
        code="AMC_ACCESS_DENIED",
        message=(
            f"AMC refused access token {refused_fp} and no newer token came from the token "
            f"service within {wait_s:.0f}s (is the token service running?)"
        ),
        retryable=False,
    )


def status_of(failure: ExecutionError) -> ExecutionStatus:
    """The terminal status an error ends an execution with."""
    if failure.code == "CANCELLED":
        return ExecutionStatus.CANCELLED
    if failure.code == "TIMED_OUT":
        return ExecutionStatus.TIMED_OUT
    return ExecutionStatus.FAILED


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
