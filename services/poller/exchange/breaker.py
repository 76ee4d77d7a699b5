"""A small circuit breaker per AMC endpoint.

Written here rather than taken from a library: the maintained asyncio breakers (purgatory,
aiobreaker) wrap the call itself, while the poller must ask *before claiming work* whether an
endpoint is open (so it does not take leases and rate slots it cannot use), and must count
only AMC's own failures (5xx, timeouts), not 4xx answers. The state is per process: each
replica protects AMC from its own traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """CLOSED until `threshold` failures in a row; OPEN for `reset_s`; then one probe."""

    threshold: int
    reset_s: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = field(default=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows(self) -> bool:
        """Whether a call may go now. In HALF_OPEN, only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return bool(state is BreakerState.HALF_OPEN and not self.probing)

    def begin(self) -> bool:
        """Reserve the right to call; False when the breaker refuses."""
        if not self.allows():
            return False
        if self.state is BreakerState.HALF_OPEN:
            self.probing = True
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failed(self) -> None:
        self.probing = False
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            # A failed probe (or the threshold reached) opens it for another full period.
            self.opened_at = self.clock()

    def neutral(self) -> None:
        """The call ended without telling whether AMC is healthy (e.g. 4xx, 429)."""
        self.probing = False
        if self.opened_at is not None:
            # AMC answered, so it is up: a probe that got any answer closes the breaker.
            self.succeeded()


class Breakers:
    """One breaker per endpoint name (create, get, list, cancel, download_urls, results)."""

    def __init__(self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic):
        self._threshold = threshold
        self._reset_s = reset_s
        self._clock = clock
        self._by_endpoint: dict[str, CircuitBreaker] = {}

    def __getitem__(self, endpoint: str) -> CircuitBreaker:
        breaker = self._by_endpoint.get(endpoint)
        if breaker is None:
            breaker = CircuitBreaker(self._threshold, self._reset_s, self._clock)
            self._by_endpoint[endpoint] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {name: b.state for name, b in self._by_endpoint.items()}
