"""Retries and re-runs of a fire time: pure rules (no I/O).

A schedule may carry a retry policy. When a run of it fails with an error AMC or the poller
marks retryable (`execution.completed.error.retryable`), and attempts remain, the run waits
`backoff_s x 2^(attempt-1)` (capped by `backoff_max_s`) and is sent again as the next attempt:
the same run id (origin), the same fire time and the same concrete window and parameters, a
higher `attempt` on `schedule.due`. The poller runs one execution per (origin, attempt), so
every attempt is one execution; an attempt starts only after the previous one failed, so a
fire time never has two successful runs. A failure that is not retryable (or the last
attempt) ends the run as before, and only then counts towards auto-pause.

A re-run is an operator's new attempt of a failed run (FAILED or TIMED_OUT), retryable or not,
except a run AMC may have executed (DOWNLOAD_FAILED, SUBMISSION_UNKNOWN: the poller's answer
for a result it could not fetch or a submission it could not confirm), where another
execution could make a second success: same rules, one more attempt.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.contract import ExecutionError

__all__ = ["RERUNNABLE_STATES", "RetryPolicy", "retry_delay"]

# What `rerun --failed` picks: runs that ended without a result. A cancellation is a person's
# decision and a success is final.
RERUNNABLE_STATES = ("FAILED", "TIMED_OUT")


class RetryPolicy(BaseModel):
    """Automatic retries of a failed run (retryable failures only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(
        default=3, ge=2, le=10, description="Attempts in total per fire time, the first included"
    )
    backoff_s: float = Field(
        default=60.0, ge=0, le=86_400, description="Wait after the first failed attempt"
    )
    backoff_max_s: float = Field(
        default=900.0, ge=0, le=86_400, description="Longest wait (the wait doubles per attempt)"
    )


def retry_delay(
    policy: RetryPolicy | None, attempt: int, status: str, error: ExecutionError | None
) -> timedelta | None:
    """How long to wait before the next attempt after attempt `attempt` ended with `status`,
    or None when the run ends here (no policy, success, not retryable, attempts used up)."""
    if policy is None or status == "SUCCEEDED" or error is None or not error.retryable:
        return None
    if attempt >= policy.attempts:
        return None
    seconds = min(policy.backoff_max_s, policy.backoff_s * 2 ** max(0, attempt - 1))
    return timedelta(seconds=seconds)
