"""The trouble the soak causes while the workload runs, each entry logged with its time.

- a random service replica killed with SIGKILL every 20-40 s and started again a few seconds
  later (what Kubernetes does with a crashed pod);
- the broker paused (SIGSTOP, then SIGCONT: Tansu keeps its data in memory only, so it is
  paused rather than restarted);
- the soak's PostgreSQL crashed (`pg_ctl stop -m immediate`) and started again;
- users' access tokens revoked at Amazon before their expiry, a few users at a time, several
  times (the refresh token stays good: a refresh must cure it, issue 20);
- AMC answering 5xx to a share of its API calls all along (some of them after the call took
  effect, the ambiguous answer exactly-once has to survive), a burst of failures in a row, a
  throttle storm (1 request per second per instance) and a slow spell.

Processes that exit on their own are started again too (and reported): a replica that gives
up while the broker or database is away is restarted, as a pod would be.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amclocal.broker import LocalBroker
from amclocal.pgcluster import PostgresCluster
from amclocal.simulator import FaultRule, RouteKind, SimControl
from amclocal.stack import ServiceStack
from bench.soak.config import SoakConfig
from bench.soak.workload import user_id

log = logging.getLogger("soak")

THROTTLE_STORM_RATE = 1
SLOW_SPELL_LATENCY_MS = 1500
FAILURE_BURST = 30
PG_DOWN_S = 3.0
REVOKE_AT = (0.15, 0.45, 0.7, 0.9)  # shares of the fault phase


@dataclass
class FaultLog:
    started: float = field(default_factory=time.monotonic)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, **detail: Any) -> None:
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "t_s": round(time.monotonic() - self.started, 1),
            "fault": kind,
            **detail,
        }
        self.entries.append(entry)
        log.info("fault: %s", entry)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for entry in self.entries:
            counted[entry["fault"]] = counted.get(entry["fault"], 0) + 1
        return counted


class Injector:
    def __init__(
        self,
        cfg: SoakConfig,
        stack: ServiceStack,
        broker: LocalBroker,
        pg: PostgresCluster,
        sim: SimControl,
        faults: FaultLog,
        rng: random.Random,
    ) -> None:
        self.cfg = cfg
        self.stack = stack
        self.broker = broker
        self.pg = pg
        self.sim = sim
        self.log = faults
        self.rng = rng
        self.down: set[str] = set()  # replicas the injector killed and has not restarted yet
        self.restarting: set[str] = set()  # started again, not ready yet
        self.unexpected_exits: list[dict[str, Any]] = []
        self._amc_rules: dict[str, FaultRule] = {}
        # Users in the order their tokens are revoked, a third at a time, round and round.
        self._revoke_order = [user_id(n) for n in range(cfg.instances)]
        self.rng.shuffle(self._revoke_order)
        self._revoked = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervising = True

    # --- the phase ---------------------------------------------------------------------

    async def run(self) -> None:
        """Faults for cfg.phase_s seconds; returns with every fault lifted."""
        d = self.cfg.phase_s
        supervisor = asyncio.create_task(self.supervise())
        try:
            await self.set_amc_rules(
                errors=FaultRule(error_rate=self.cfg.amc_error_rate, status=503),
                ambiguous_creates=FaultRule(
                    kinds=[RouteKind.CREATE],
                    error_rate=self.cfg.amc_error_rate / 2,
                    status=502,
                    after_handling=True,
                ),
            )
            self.log.add(
                "amc_5xx_on",
                error_rate=self.cfg.amc_error_rate,
                ambiguous_create_rate=self.cfg.amc_error_rate / 2,
            )
            await asyncio.gather(
                self.kill_loop(d - 15.0),
                self.at(0.20 * d, self.pause_broker()),
                self.at(0.35 * d, self.failure_burst()),
                self.at(0.50 * d, self.restart_postgres()),
                self.at(0.60 * d, self.throttle_storm(max(20.0, 0.08 * d))),
                self.at(0.75 * d, self.slow_spell(max(20.0, 0.08 * d))),
                *(self.at(share * d, self.revoke_tokens()) for share in REVOKE_AT),
            )
            await asyncio.sleep(max(0.0, self.log.started + d - time.monotonic()))
            await self.sim.clear_faults()
            self._amc_rules.clear()
            self.log.add("amc_5xx_off")
            await self.all_running()
        finally:
            self._supervising = False
            await supervisor

    async def at(self, offset_s: float, fault: Coroutine[Any, Any, None]) -> None:
        try:
            await asyncio.sleep(max(0.0, self.log.started + offset_s - time.monotonic()))
        except asyncio.CancelledError:
            fault.close()  # stopped before its time: it never starts
            raise
        await fault

    # --- replicas ----------------------------------------------------------------------

    async def kill_loop(self, until_s: float) -> None:
        low, high = self.cfg.kill_every_s
        while True:
            await asyncio.sleep(self.rng.uniform(low, high))
            if time.monotonic() - self.log.started > until_s:
                return
            candidates = [
                n
                for n in self.stack.service_processes
                if n not in self.down
                and n not in self.restarting
                and self.stack.processes[n].poll() is None
            ]
            if not candidates:
                continue
            name = self.rng.choice(sorted(candidates))
            self.down.add(name)
            pid = self.stack.processes[name].pid
            await asyncio.to_thread(self.stack.kill, name)
            self.log.add("kill -9", replica=name, pid=pid)
            self._spawn(self._restart_later(name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart_later(self, name: str) -> None:
        await asyncio.sleep(self.rng.uniform(*self.cfg.restart_after_s))
        await self._restart(name, "restart")

    async def _restart(self, name: str, why: str) -> None:
        self.restarting.add(name)
        self.down.discard(name)
        proc = self.stack.restart(name)
        self.log.add(why, replica=name, pid=proc.pid)
        began = time.monotonic()
        try:
            await self.stack.wait_ready(name, 120)
            self.log.add("ready", replica=name, after_s=round(time.monotonic() - began, 1))
        except RuntimeError as exc:
            log.warning("%s did not become ready: %s", name, exc)
        finally:
            self.restarting.discard(name)

    async def supervise(self) -> None:
        """Start again any replica that exited by itself (not killed by us)."""
        while self._supervising:
            await asyncio.sleep(1.0)
            for name in self.stack.service_processes:
                proc = self.stack.processes[name]
                if name in self.down or proc.poll() is None:
                    continue
                self.unexpected_exits.append(
                    {
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "replica": name,
                        "returncode": proc.returncode,
                    }
                )
                self.log.add("exited by itself", replica=name, returncode=proc.returncode)
                self.down.add(name)
                self._spawn(self._restart_later(name))

    async def all_running(self, timeout_s: float = 180) -> None:
        """Wait until no replica is down or starting (every kill restarted and ready)."""
        for _ in range(int(timeout_s * 2)):
            if not (self.down or self.restarting):
                break
            await asyncio.sleep(0.5)
        await asyncio.gather(*(self.stack.wait_ready(n, 120) for n in self.stack.service_processes))

    # --- broker and database -----------------------------------------------------------

    async def pause_broker(self) -> None:
        self.broker.pause()
        self.log.add("broker SIGSTOP", for_s=self.cfg.broker_pause_s)
        await asyncio.sleep(self.cfg.broker_pause_s)
        self.broker.resume()
        self.log.add("broker SIGCONT")

    async def restart_postgres(self) -> None:
        await asyncio.to_thread(self.pg.stop, "immediate")
        self.log.add("postgres stop -m immediate")
        await asyncio.sleep(PG_DOWN_S)
        await asyncio.to_thread(self.pg.start)
        self.log.add("postgres started")

    # --- AMC -----------------------------------------------------------------------------

    async def set_amc_rules(self, **rules: FaultRule | None) -> None:
        """Add, replace (by name) or remove (None) fault rules; the simulator has only
        'clear all', so the whole set is sent again."""
        for name, rule in rules.items():
            if rule is None:
                self._amc_rules.pop(name, None)
            else:
                self._amc_rules[name] = rule
        await self.sim.clear_faults()
        for rule in self._amc_rules.values():
            await self.sim.add_fault(rule)

    async def failure_burst(self) -> None:
        await self.set_amc_rules(burst=FaultRule(fail_next=FAILURE_BURST, status=500))
        # The simulator counts the burst down in its own copy; forgetting ours keeps a later
        # change of the rule set from starting the burst over (it drops the rest, if any).
        self._amc_rules.pop("burst")
        self.log.add("amc fail_next", requests=FAILURE_BURST, status=500)

    async def throttle_storm(self, seconds: float) -> None:
        before = (await self.sim.config()).rate_limit_per_second
        await self.sim.configure(rate_limit_per_second=THROTTLE_STORM_RATE)
        self.log.add("amc throttle storm", rate_limit_per_second=THROTTLE_STORM_RATE, for_s=seconds)
        await asyncio.sleep(seconds)
        await self.sim.configure(rate_limit_per_second=before)
        self.log.add("amc throttle storm over", rate_limit_per_second=before)

    async def revoke_tokens(self) -> None:
        """Withdraw the access tokens of a third of the users (at least one) at once, in the
        middle of their submissions and polls. Each revocation takes the next third, so one
        user's tokens are not withdrawn again while the refresh that cures the last
        revocation may still be on its way: the product retries once with a newer token
        (issue 20), and a second revocation inside that one cycle is a denial by its rule,
        not a fault a refresh cures."""
        order = self._revoke_order
        count = max(1, len(order) // 3)
        chosen = sorted(order[(self._revoked + i) % len(order)] for i in range(count))
        self._revoked += count
        revoked = {u: await self.sim.revoke_access_tokens(u) for u in chosen}
        self.log.add("access tokens revoked", users=revoked)

    async def slow_spell(self, seconds: float) -> None:
        await self.set_amc_rules(slow=FaultRule(latency_ms=SLOW_SPELL_LATENCY_MS))
        self.log.add("amc slow spell", latency_ms=SLOW_SPELL_LATENCY_MS, for_s=seconds)
        await asyncio.sleep(seconds)
        await self.set_amc_rules(slow=None)
        self.log.add("amc slow spell over")
