"""Everything the simulator remembers, in one object that the routes share."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from amclocal.simulator.config import FaultRule, RouteKind, SimConfig
from amclocal.simulator.executions import Amc
from amclocal.simulator.identity import Identity
from amclocal.simulator.persist import StateFile
from amclocal.simulator.requestlog import InstanceStats, RequestLog, Stats, max_in_one_second
from amclocal.simulator.throttle import RateLimiter


@dataclass(frozen=True)
class FaultDecision:
    delay_seconds: float
    fail_status: int | None
    after_handling: bool = False
    retry_after_s: int | None = None


@dataclass
class SimState:
    initial: SimConfig
    # Where the kept state lives (see persist.py); None: in memory only, as tests want it.
    store: StateFile | None = None
    config: SimConfig = field(init=False)
    rng: random.Random = field(init=False)
    identity: Identity = field(init=False)
    amc: Amc = field(init=False)
    limiter: RateLimiter = field(init=False)
    faults: list[FaultRule] = field(init=False)
    log: RequestLog = field(init=False)
    contract_violations: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.reset()
        kept = self.store.read() if self.store is not None else None
        if kept is not None:
            self.identity, self.amc = kept
            # The seed would replay the ids it gave before the restart, and the kept
            # executions (and the poller's database) hold those: Amazon never gives an id
            # twice. A kept state is a local run's, which needs no repeatable ids.
            self.rng = random.Random()

    def save(self) -> None:
        if self.store is not None:
            self.store.write(self.identity, self.amc)

    def reset(self) -> None:
        """Back to the state right after start: same config, same seed, nothing registered."""
        self.config = self.initial.model_copy()
        self.rng = random.Random(self.config.seed)
        self.identity = Identity()
        self.amc = Amc()
        self.limiter = RateLimiter()
        self.faults = []
        self.log = RequestLog()
        self.contract_violations = []

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def decide_fault(self, kind: RouteKind) -> FaultDecision:
        """Latency adds up over matching rules; the first rule that fires picks the status."""
        delay = 0.0
        fail_status: int | None = None
        after = False
        retry_after: int | None = None
        for rule in self.faults:
            if not rule.matches(kind):
                continue
            delay += rule.latency_ms / 1000
            if fail_status is not None:
                continue
            if rule.fail_next > 0:
                rule.fail_next -= 1
                fail_status, after = rule.status, rule.after_handling
                retry_after = rule.retry_after_s
            elif rule.error_rate > 0 and self.rng.random() < rule.error_rate:
                fail_status, after = rule.status, rule.after_handling
                retry_after = rule.retry_after_s
        return FaultDecision(delay, fail_status, after, retry_after)

    def stats(self) -> Stats:
        self.amc.advance_all(self.now(), self.config.max_running)
        result = Stats()
        for instance_id, instance in self.amc.instances.items():
            result.instances[instance_id] = InstanceStats(
                executions_created=len(instance.executions),
                max_running_seen=instance.max_running_seen,
            )
        for instance_id, records in self.log.api_traffic().items():
            stats = result.instances.setdefault(instance_id, InstanceStats())
            stats.requests = len(records)
            stats.throttled = sum(r.status == 429 for r in records)
            stats.max_rps = max_in_one_second([r.time for r in records])
        return result
