"""While `./dev run` runs: a process of its stack that ends by itself (a crash, the kernel's
out-of-memory killer, a stray `kill -9`) is started again, as Kubernetes starts a crashed
container again, and the run says so. Before this, the run went on without it and said
nothing: requests waited for a service that was gone.

A process that keeps ending waits longer between starts (1 s, doubling to 30 s); one that ran
a minute starts over at 1 s. The broker is not started again: its topics live in memory, so
a new one would start empty under services that expect their offsets. Nor is the embedded
PostgreSQL. The run stops instead, saying why.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from amclocal.postgres import ended_within

if TYPE_CHECKING:
    from amclocal.broker import LocalBroker
    from amclocal.stack import ServiceStack

FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0
RAN_A_WHILE_S = 60.0
CHECK_EVERY_S = 1.0


def how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class Keeper:
    def __init__(
        self,
        stack: ServiceStack,
        say: Callable[[str], None],
        broker: LocalBroker | None = None,
        postgres_pid: int | None = None,
        *,
        first_pause_s: float = FIRST_PAUSE_S,
        longest_pause_s: float = LONGEST_PAUSE_S,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self._stack = stack
        self._first_pause_s = first_pause_s
        self._longest_pause_s = longest_pause_s
        self._check_every_s = check_every_s
        self._say = say
        self._broker = broker
        self._postgres_pid = postgres_pid
        self._pauses: dict[str, float] = {}
        self._ran_since: dict[str, float] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Until cancelled, or until the broker or the embedded PostgreSQL ends
        (RuntimeError, the reason)."""
        clock = asyncio.get_running_loop()
        self._ran_since = {name: clock.time() for name in self._stack.processes}
        try:
            while True:
                await asyncio.sleep(self._check_every_s)
                ended = None if self._broker is None else self._broker.exit_code()
                if ended is not None:
                    raise RuntimeError(
                        f"the broker ended ({how_it_ended(ended)}); its topics were in memory, "
                        "so this run cannot go on: start ./dev run again"
                    )
                if self._postgres_pid is not None and ended_within(self._postgres_pid, 0):
                    raise RuntimeError(
                        "the embedded PostgreSQL ended; the services cannot go on without it: "
                        "start ./dev run again (its data is kept)"
                    )
                for name, proc in list(self._stack.processes.items()):
                    code = proc.poll()
                    if code is not None and name not in self._starting:
                        task = asyncio.create_task(self._start_again(name, code))
                        self._starting[name] = task
        finally:
            starting = list(self._starting.values())
            for task in starting:
                task.cancel()
            await asyncio.gather(*starting, return_exceptions=True)

    async def _start_again(self, name: str, code: int) -> None:
        clock = asyncio.get_running_loop()
        try:
            if clock.time() - self._ran_since.get(name, clock.time()) >= RAN_A_WHILE_S:
                self._pauses[name] = self._first_pause_s
            pause = self._pauses.get(name, self._first_pause_s)
            self._say(
                f"{name} ended ({how_it_ended(code)}); starting it again in {pause:g} s "
                f"(its log: {self._stack.log_dir / name}.log)"
            )
            await asyncio.sleep(pause)
            self._pauses[name] = min(pause * 2, self._longest_pause_s)
            self._ran_since[name] = clock.time()
            self._stack.restart(name)
            try:
                await self._stack.wait_ready(name, 120)
            except RuntimeError as exc:
                self._say(f"{name} did not come back: {exc}")
                return
            self._say(f"{name} is ready again")
        finally:
            self._starting.pop(name, None)
