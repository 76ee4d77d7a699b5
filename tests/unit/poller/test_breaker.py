"""The per-endpoint circuit breaker, on a fake clock."""

from __future__ import annotations

from services.poller.exchange.breaker import Breakers, BreakerState, CircuitBreaker


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read through a call, so the type checker does not narrow the property between steps."""
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_s=10, clock=clock)
    for _ in range(2):
        assert breaker.begin()
        breaker.failed()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.begin()
    breaker.failed()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.begin()
    clock.now = 10
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.begin()
    assert not breaker.begin()  # only one probe at a time
    breaker.failed()  # the probe failed: open for another full period
    assert state(breaker) is BreakerState.OPEN
    clock.now = 19
    assert not breaker.begin()
    clock.now = 20
    assert breaker.begin()
    breaker.succeeded()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.begin()


def test_success_resets_the_count_and_answers_close_a_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, reset_s=5, clock=clock)
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert state(breaker) is BreakerState.CLOSED
    breaker.failed()
    assert state(breaker) is BreakerState.OPEN
    clock.now = 5
    assert breaker.begin()
    breaker.neutral()  # a 4xx answer: AMC is up
    assert state(breaker) is BreakerState.CLOSED


def test_one_breaker_per_endpoint() -> None:
    breakers = Breakers(threshold=1, reset_s=5, clock=Clock())
    breakers["get"].failed()
    assert state(breakers["get"]) is BreakerState.OPEN
    assert state(breakers["create"]) is BreakerState.CLOSED
    assert breakers.states() == {"get": BreakerState.OPEN, "create": BreakerState.CLOSED}
