"""Overlap policies and the auto-pause rule."""

from __future__ import annotations

import pytest

from services.scheduler.timing import (
    DEFAULT_PAUSE_THRESHOLD,
    OverlapDecision,
    OverlapPolicy,
    decide_overlap,
    failure_streak,
    should_pause,
)


@pytest.mark.parametrize(
    ("policy", "running", "buffered", "decision"),
    [
        ("skip", 0, 0, "fire"),
        ("skip", 1, 0, "skip"),
        ("allow", 0, 0, "fire"),
        ("allow", 3, 0, "fire"),
        ("buffer_one", 0, 0, "fire"),
        ("buffer_one", 1, 0, "buffer"),
        ("buffer_one", 1, 1, "skip"),
        ("buffer_one", 2, 1, "skip"),
    ],
)
def test_decide_overlap(
    policy: OverlapPolicy, running: int, buffered: int, decision: OverlapDecision
) -> None:
    assert decide_overlap(policy, running, buffered) == decision


def test_decide_overlap_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        decide_overlap("skip", -1, 0)


def test_failure_streak_counts_and_success_resets() -> None:
    streak = 0
    for succeeded in (False, False, True, False, False, False):
        streak = failure_streak(streak, succeeded)
    assert streak == 3
    with pytest.raises(ValueError, match="must not be negative"):
        failure_streak(-1, False)


def test_should_pause_at_the_threshold() -> None:
    assert DEFAULT_PAUSE_THRESHOLD == 5
    assert not should_pause(4)
    assert should_pause(5)
    assert should_pause(6)
    assert not should_pause(0, threshold=1)
    assert should_pause(1, threshold=1)
    with pytest.raises(ValueError, match="threshold must be at least 1"):
        should_pause(3, threshold=0)
