"""AMC's per-instance request limit: a sliding one-second window."""

from __future__ import annotations

import math
from collections import deque


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float, limit: int) -> float | None:
        """None if the request may pass (and counts), else the seconds until it would."""
        if limit <= 0:
            return None
        window = self._windows.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            return window[0] + 1.0 - now
        window.append(now)
        return None


def retry_after_header(wait: float) -> str:
    """Retry-After carries whole seconds; rounding up keeps a polite client within the limit."""
    return str(max(1, math.ceil(wait)))
