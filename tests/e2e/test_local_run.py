"""`./dev run` as a user meets it on day two (issue 21): started as a process with its output
piped, stopped by SIGTERM, by Ctrl-C (SIGINT) and by its output's reader going away, started
again on the same data, started twice, and failing during start. Each way it ends must leave
no process it started behind, the embedded PostgreSQL and the broker included.

The data directory and the embedded PostgreSQL are the test's own (`AMC_VAR_DIR`, forced
`AMC_EMBEDDED_POSTGRES=1` as on a machine with Python only), and so is the broker (none is
given, so the run starts its own Tansu). The ports are moved off 8081-8090 (`AMC_PORT_BASE`)
so that a developer's own `./dev run` and this test do not meet.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from amclocal.demo import DEMO
from amclocal.runguard import port_free

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240  # an embedded PostgreSQL's first initdb on a busy two-core machine
STOP_TIMEOUT_S = 120  # each of the ten processes may take its 30 s grace, in practice ~3 s
READY_LINE = "Events as they flow"

pytestmark = pytest.mark.slow


def processes() -> dict[int, tuple[int, str]]:
    """Every live (not zombie) process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[0] != "Z":
            found[int(entry.name)] = (int(stat[1]), command)
    return found


def started_by(pid: int, var: Path) -> set[int]:
    """The run's processes: its descendants, and whatever names its data directory (the
    embedded PostgreSQL, which pg_ctl detaches from its parent)."""
    table = processes()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found = {p for p, (_, command) in table.items() if str(var) in command}
    todo = [pid, *found]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found - {pid}


async def ended(pid: int) -> None:
    """Until the process (not a child of ours) has ended: its pidfd turns readable."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pidfd, gone.set_result, None)
    try:
        await gone
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def alive(pids: set[int]) -> set[int]:
    return pids & set(processes())


@dataclass
class Run:
    """One `./dev run`, its output read from a pipe of the test's own making."""

    proc: asyncio.subprocess.Process
    var: Path
    reader: asyncio.StreamReader
    pipe: asyncio.ReadTransport
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def read_until(self, wanted: str, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not any(wanted in line for line in self.lines):
                line = (await self.reader.readline()).decode()
                assert line, f"./dev run ended before {wanted!r}:\n{self.output}"
                self.lines.append(line)

    async def read_to_end(self) -> None:
        while line := (await self.reader.readline()).decode():
            self.lines.append(line)

    @property
    def api_key(self) -> str:
        found = re.search(r"AMCCTL_API_KEY=(\S+)", self.output)
        assert found, self.output
        return found.group(1)

    async def stop(self, sig: signal.Signals) -> int:
        started = started_by(self.proc.pid, self.var)
        assert len(started) >= 10, "lifeline, broker, PostgreSQL, simulator, 5 services, console"
        self.proc.send_signal(sig)
        await self.read_to_end()
        code = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        assert not alive(started), f"outlived {sig.name}: {alive(started)}\n{self.output}"
        return code


@pytest.fixture
def var() -> Iterator[Path]:
    """The run's data directory. Not under pytest's tmp_path: run as root, the embedded
    PostgreSQL runs as a user of its own that must traverse every parent directory, and
    each pytest session (another one on the machine, too) makes /tmp/pytest-of-<user> 0700
    again, which can cut the server off from its own files mid-run."""
    path = Path(tempfile.mkdtemp(prefix="amc-devrun-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(var: Path) -> dict[str, str]:
    # Below Linux's ephemeral range (32768+), where other tests' free ports and outgoing
    # connections come from, and all ten free now.
    base = next(
        b
        for b in random.sample(range(20000, 32700, 10), 50)
        if all(port_free(b + n) for n in range(1, 11))
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return environ | {
        "AMC_PORT_BASE": str(base),
        "AMC_VAR_DIR": str(var),
        "AMC_EMBEDDED_POSTGRES": "1",
        "OTEL_TRACES_EXPORTER": "none",
        "PYTHON": sys.executable,
    }


async def dev_run(env: dict[str, str]) -> Run:
    """`./dev run`, as a user types it, with its output (stdout and stderr) into a pipe."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / "dev"), "run", cwd=ROOT, env=env, stdout=write_fd, stderr=write_fd
        )
    finally:
        os.close(write_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    return Run(proc, Path(env["AMC_VAR_DIR"]), reader, pipe)


@pytest.fixture
async def runs() -> AsyncIterator[list[Run]]:
    """Every run a test starts; one still going at the end is stopped (a failed test must
    not leave a stack running on the machine)."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.returncode is None:
            run.proc.send_signal(signal.SIGINT)
            run.pipe.close()
            await asyncio.wait_for(run.proc.wait(), STOP_TIMEOUT_S)


async def ready_and_own(run: Run, base: int) -> None:
    """Every service answers ready, and from a process of this run."""
    own = started_by(run.proc.pid, run.var)
    async with httpx.AsyncClient(timeout=10) as http:
        for port in range(base + 1, base + 7):
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).json()["pid"] in own


# Four starts of the whole stack and a wait for the next whole minute: longer than the
# suite's two minutes per test on a busy two-core machine.
@pytest.mark.timeout(600)
async def test_day_two_restart_keeps_schedules_and_no_way_of_stopping_leaves_anything(
    env: dict[str, str], runs: list[Run]
) -> None:
    base = int(env["AMC_PORT_BASE"])
    scheduler = f"http://127.0.0.1:{base + 3}"

    # Day one: start, and create a schedule that fires every minute.
    first = await dev_run(env)
    runs.append(first)
    await first.read_until(READY_LINE, START_TIMEOUT_S)
    assert "Warning" not in first.output, first.output
    headers = {"Authorization": f"Bearer {first.api_key}"}
    async with httpx.AsyncClient(base_url=scheduler, headers=headers, timeout=10) as http:
        created = await http.post(
            "/schedules",
            json={
                "user_id": DEMO.user_id,
                "instance_id": DEMO.instance_id,
                "advertiser_id": DEMO.advertiser_id,
                "marketplace_id": DEMO.marketplace_id,
                "workflow_id": DEMO.workflow_id,
                "cron": "* * * * *",
                "timezone": "UTC",
            },
        )
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]

    # A second ./dev run in the same checkout is refused at once, naming the first.
    second = await dev_run(env)
    await second.read_to_end()
    assert await asyncio.wait_for(second.proc.wait(), 30) == 1
    assert f"another ./dev run is running here (pid {first.proc.pid}" in second.output
    await ready_and_own(first, base)

    assert await first.stop(signal.SIGTERM) == 0
    assert "stopping (SIGTERM)" in first.output
    assert "stopped the embedded PostgreSQL" in first.output
    assert "stopped: nothing this run started is still running" in first.output

    # Day two, same data: the schedule fires and its run succeeds.
    restarted_at = time.time()
    again = await dev_run(env)
    runs.append(again)
    await again.read_until(READY_LINE, START_TIMEOUT_S)
    assert again.api_key == first.api_key, "the keys are kept with the data"
    async with httpx.AsyncClient(base_url=scheduler, headers=headers, timeout=10) as http:
        async with asyncio.timeout(180):  # the next whole minute, then a 12 s execution
            while True:
                page = (await http.get(f"/schedules/{schedule_id}/runs")).json()
                after = [
                    r
                    for r in page["items"]
                    if _epoch(r["created_at"]) >= restarted_at
                    and r["state"] not in ("EMITTED", "SUBMITTED")
                ]
                if after:
                    break
                await asyncio.sleep(1)
    assert after[0]["state"] == "SUCCEEDED", after[0]
    assert await again.stop(signal.SIGINT) == 0
    assert "stopping (SIGINT)" in again.output

    # Day two, evening: the output's reader goes away (`./dev run | tee`, Ctrl-C).
    third = await dev_run(env)
    runs.append(third)
    await third.read_until(READY_LINE, START_TIMEOUT_S)
    started = started_by(third.proc.pid, third.var)
    third.pipe.close()
    assert await asyncio.wait_for(third.proc.wait(), STOP_TIMEOUT_S) == 0
    assert not alive(started), f"outlived its output: {alive(started)}"
    told = (third.var / "run.log").read_text()
    assert "stopping (the output's reader went away)" in told
    assert told.rstrip().endswith("stopped: nothing this run started is still running")

    # Killed outright (SIGKILL: no code of its own runs), its watchdog stops the rest.
    fourth = await dev_run(env)
    runs.append(fourth)
    await fourth.read_until(READY_LINE, START_TIMEOUT_S)
    started = started_by(fourth.proc.pid, fourth.var)
    lifeline = {p for p in started if "amclocal.lifeline" in processes().get(p, (0, ""))[1]}
    assert len(lifeline) == 1
    fourth.proc.kill()
    await fourth.proc.wait()
    # The watchdog exits once everything it watched has ended.
    await asyncio.wait_for(ended(lifeline.pop()), STOP_TIMEOUT_S)
    assert not alive(started), f"outlived SIGKILL: {alive(started)}"
    told = (fourth.var / "run.log").read_text()
    assert "[lifeline] stopped embedded PostgreSQL" in told
    assert told.rstrip().endswith("[lifeline] stopped everything the launcher had started")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(300)
async def test_a_service_that_dies_is_started_again_and_the_run_says_so(
    env: dict[str, str], runs: list[Run]
) -> None:
    poller = f"http://127.0.0.1:{int(env['AMC_PORT_BASE']) + 2}"
    run = await dev_run(env)
    runs.append(run)
    await run.read_until(READY_LINE, START_TIMEOUT_S)
    async with httpx.AsyncClient(timeout=10) as http:
        first = (await http.get(f"{poller}/healthz")).json()["pid"]
        os.kill(first, signal.SIGKILL)
        await run.read_until("poller is ready again", 120)
        assert "poller ended (killed by SIGKILL); starting it again in 1 s" in run.output
        assert (await http.get(f"{poller}/readyz")).status_code == 200
        again = (await http.get(f"{poller}/healthz")).json()["pid"]
    assert again != first
    assert again in started_by(run.proc.pid, run.var)
    assert await run.stop(signal.SIGINT) == 0
    assert "stopped: nothing this run started is still running" in run.output


async def test_a_taken_port_refuses_the_start_naming_the_port_and_its_holder(
    env: dict[str, str], runs: list[Run]
) -> None:
    simulator_port = int(env["AMC_PORT_BASE"]) + 10
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", simulator_port))
        holder.listen()
        run = await dev_run(env)
        runs.append(run)
        await run.read_to_end()
        assert await asyncio.wait_for(run.proc.wait(), 30) == 1
    assert (
        f"port {simulator_port} (the AMC/LWA simulator) is already in use by pid {os.getpid()}"
        in run.output
    ), run.output
    assert not started_by(run.proc.pid, run.var), "nothing was started"


async def test_a_failure_during_start_stops_what_was_started_and_says_why(
    env: dict[str, str], runs: list[Run], var: Path
) -> None:
    """The broker and the simulator are up when the migrations find no database."""
    env = env | {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/amc_no_such_database"}
    run = await dev_run(env)
    runs.append(run)
    await run.read_to_end()
    assert await asyncio.wait_for(run.proc.wait(), STOP_TIMEOUT_S) == 1
    assert (
        "error: migrations failed: amc-migrate: the database at "
        "127.0.0.1:5432/amc_no_such_database refused this service"
    ) in run.output, run.output
    assert 'database "amc_no_such_database" does not exist' in run.output, run.output
    stopped = {int(pid) for pid in re.findall(r"stopped \S+(?: \S+)? \(pid (\d+)\)", run.output)}
    assert len(stopped) == 2, run.output  # the simulator and the broker
    assert not alive(stopped)
    assert not started_by(run.proc.pid, var), "nothing this run started is left"
    assert "Traceback" not in run.output, "the traceback is for run.log"
    assert "Traceback" in (var / "run.log").read_text()
