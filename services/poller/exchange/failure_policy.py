"""What a failed AMC call means for the execution that made it, without I/O.

The tokens a call may be refused for, backoff, and the one policy (`after_failure`) that
failures.py applies to every failed call."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from services.poller.logic import error
from services.poller.rows import ExecRow
from shared.clients import (
    ApiError,
    ClientRequestError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.contract import (
    ExecutionError,
    ExecutionStatus,
)

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
