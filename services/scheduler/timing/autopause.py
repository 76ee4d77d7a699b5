"""Auto-pause: a schedule pauses itself after too many runs failed in a row.

The streak counts consecutive failed runs; a success resets it to 0. The schedule pauses when
the streak reaches the threshold (default 5).
"""

from __future__ import annotations

__all__ = ["DEFAULT_PAUSE_THRESHOLD", "failure_streak", "should_pause"]

DEFAULT_PAUSE_THRESHOLD = 5


def failure_streak(current: int, succeeded: bool) -> int:
    """The consecutive-failure count after a run ends: 0 after a success, one more otherwise."""
    if current < 0:
        raise ValueError(f"failure streak must not be negative, got {current}")
    return 0 if succeeded else current + 1


def should_pause(consecutive_failures: int, threshold: int = DEFAULT_PAUSE_THRESHOLD) -> bool:
    """Whether a schedule with this many consecutive failures should pause."""
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    return consecutive_failures >= threshold
