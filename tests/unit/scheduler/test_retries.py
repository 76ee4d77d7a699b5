"""Retry rules of a schedule's failed runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.scheduler.retries import RetryPolicy, retry_delay
from shared.contract import ExecutionError

RETRYABLE = ExecutionError(code="AMC_UNAVAILABLE", message="down", retryable=True)
FINAL = ExecutionError(code="AMC_VALIDATION", message="bad", retryable=False)
POLICY = RetryPolicy(attempts=4, backoff_s=30, backoff_max_s=100)


def test_retryable_failures_back_off_doubling_up_to_the_cap() -> None:
    assert retry_delay(POLICY, 1, "FAILED", RETRYABLE) == timedelta(seconds=30)
    assert retry_delay(POLICY, 2, "FAILED", RETRYABLE) == timedelta(seconds=60)
    assert retry_delay(POLICY, 3, "TIMED_OUT", RETRYABLE) == timedelta(seconds=100)


def test_no_retry_after_the_last_attempt_a_final_failure_a_success_or_without_policy() -> None:
    assert retry_delay(POLICY, 4, "FAILED", RETRYABLE) is None
    assert retry_delay(POLICY, 1, "FAILED", FINAL) is None
    assert retry_delay(POLICY, 1, "SUCCEEDED", None) is None
    assert retry_delay(None, 1, "FAILED", RETRYABLE) is None
    cancelled = ExecutionError(code="CANCELLED", message="by a person", retryable=False)
    assert retry_delay(POLICY, 1, "CANCELLED", cancelled) is None


def test_a_policy_needs_at_least_two_attempts() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(attempts=1)
    assert RetryPolicy().attempts == 3
