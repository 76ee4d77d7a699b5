"""`./dev run`'s keeper (amclocal/keeper.py): a process that ends by itself is started again
and the run says so, with longer pauses while it keeps ending; a dead broker ends the run."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from amclocal.keeper import Keeper, how_it_ended


class _Proc:
    def __init__(self, code: int | None = None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


class _Stack:
    """Processes that end as the test says; `restart` starts one that dies again at once
    `dies` more times."""

    def __init__(self, dies: int) -> None:
        self.processes: dict[str, Any] = {"poller": _Proc(-signal.SIGKILL)}
        self.log_dir = Path("/var/amc")
        self.restarts = 0
        self._dies = dies

    def restart(self, name: str) -> _Proc:
        self.restarts += 1
        proc = _Proc(1 if self.restarts <= self._dies else None)
        self.processes[name] = proc
        return proc

    async def wait_ready(self, name: str, timeout_s: float) -> None:
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited with 1")


class _Broker:
    def __init__(self) -> None:
        self.code: int | None = None

    def exit_code(self) -> int | None:
        return self.code


class _Said:
    """What the run says; `heard(text)` waits until a line holding `text` was said."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def heard(self, text: str) -> None:
        async with asyncio.timeout(5):
            while not any(text in line for line in self.lines):
                self._changed.clear()
                await self._changed.wait()


def _keeper(
    stack: _Stack, said: _Said, broker: _Broker | None = None, postgres_pid: int | None = None
) -> Keeper:
    return Keeper(
        stack,  # type: ignore[arg-type]
        said,
        broker,  # type: ignore[arg-type]
        postgres_pid,
        first_pause_s=0.01,
        longest_pause_s=0.04,
        check_every_s=0.001,
    )


async def test_a_process_that_keeps_dying_waits_longer_each_time() -> None:
    stack, said = _Stack(dies=3), _Said()
    running = asyncio.create_task(_keeper(stack, said).run())
    try:
        await said.heard("poller is ready again")
    finally:
        running.cancel()
    log = "(its log: /var/amc/poller.log)"
    assert said.lines == [
        f"poller ended (killed by SIGKILL); starting it again in 0.01 s {log}",
        "poller did not come back: poller exited with 1",
        f"poller ended (exit status 1); starting it again in 0.02 s {log}",
        "poller did not come back: poller exited with 1",
        f"poller ended (exit status 1); starting it again in 0.04 s {log}",
        "poller did not come back: poller exited with 1",
        f"poller ended (exit status 1); starting it again in 0.04 s {log}",
        "poller is ready again",
    ]
    assert stack.restarts == 4


async def test_a_dead_broker_ends_the_run_with_the_reason() -> None:
    broker = _Broker()
    stack = _Stack(dies=0)
    stack.processes["poller"] = _Proc(None)
    running = asyncio.create_task(_keeper(stack, _Said(), broker).run())
    broker.code = -signal.SIGKILL
    with pytest.raises(RuntimeError, match=r"the broker ended \(killed by SIGKILL\); its topics"):
        await asyncio.wait_for(running, 5)


async def test_a_dead_embedded_postgresql_ends_the_run_with_the_reason() -> None:
    # A pid whose process has ended and been reaped.
    gone = await asyncio.to_thread(lambda: subprocess.Popen(["true"]))
    await asyncio.to_thread(gone.wait)
    stack = _Stack(dies=0)
    stack.processes["poller"] = _Proc(None)
    running = asyncio.create_task(_keeper(stack, _Said(), postgres_pid=gone.pid).run())
    with pytest.raises(RuntimeError, match=r"the embedded PostgreSQL ended; the services"):
        await asyncio.wait_for(running, 5)


def test_how_a_process_ended_in_words() -> None:
    assert how_it_ended(-signal.SIGTERM) == "killed by SIGTERM"
    assert how_it_ended(3) == "exit status 3"
