"""Per-unit CPU costs for the capacity model, from the project's own benchmarks.

    python -m bench.capacity.unitcost [--schedules 2000] [--tokens 2000] [--executions 200]
                                      [--events 5000]

Runs, one after another, each in small size: bench.scheduler (burst only), bench.token,
bench.poller (short scenario) and the outbox pipeline of bench.outbox, and prints one JSON
object with the CPU milliseconds per unit each one measured. The scheduler bench reports no
CPU figure of its own, so its service process is sampled from /proc while it runs; the
outbox pipeline runs in this process, so its CPU is this process's own. CPU time, unlike
wall time, stays comparable on a busy machine (within the noise of cache contention).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.infra import infra
from bench.outbox.__main__ import pipeline

ROOT = Path(__file__).resolve().parents[2]


def say(message: str) -> None:
    print(f"[unitcost] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    except OSError:
        return ""


def run_bench(args: list[str], watch: str | None = None) -> tuple[dict[str, Any], float]:
    """Run `python -m bench.X ...`; returns its JSON and the most CPU seconds seen of the
    child process whose command line contains `watch` (sampled every 0.2 s until it ends)."""
    env = os.environ | {"PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for child in children_of(proc.pid):
                if watch and watch in cmdline(child):
                    with contextlib.suppress(OSError):
                        seen[child] = max(seen.get(child, 0.0), cpu_seconds(child))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {proc.returncode}")
    return json.loads(out), sum(seen.values())


def poller_costs(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Split the poller's CPU into a cost per execution (submission, download, events) and
    a cost per status poll: two scenarios with different polls per execution give two
    equations, cpu = executions x e + polls x p."""
    short, long = scenarios["short"], scenarios["long"]
    (x1, y1, c1), (x2, y2, c2) = (
        (s["executions"], s["polls"], s["poller_cpu_seconds"]) for s in (short, long)
    )
    det = x1 * y2 - x2 * y1
    per_execution = (c1 * y2 - c2 * y1) / det if det else None
    per_poll = (x1 * c2 - x2 * c1) / det if det else None
    return {
        "short": {"executions": x1, "polls": y1, "cpu_s": c1},
        "long": {"executions": x2, "polls": y2, "cpu_s": c2},
        "cpu_ms_per_execution": None if per_execution is None else round(per_execution * 1000, 2),
        "cpu_ms_per_poll": None if per_poll is None else round(per_poll * 1000, 3),
    }


async def outbox_cost(events: int) -> dict[str, Any]:
    async with infra() as env:
        began = time.process_time()
        wall, _ = await pipeline(env, events, 10, writers=1, name="unitcost")
        cpu = time.process_time() - began
    return {
        "events": events,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_event": round(cpu / events * 1000, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.capacity.unitcost", description=__doc__)
    p.add_argument("--schedules", type=int, default=2000)
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--executions", type=int, default=200)
    p.add_argument("--long-executions", type=int, default=40)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--events", type=int, default=5000)
    a = p.parse_args()
    out: dict[str, Any] = {
        "benchmark": "capacity.unitcost",
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
    }
    say(f"bench.scheduler --schedules {a.schedules} --skip-steady")
    sched, sched_cpu = run_bench(
        ["bench.scheduler", "--schedules", str(a.schedules), "--skip-steady"], "services.scheduler"
    )
    out["scheduler"] = {
        "schedules": a.schedules,
        "service_cpu_s_incl_startup": round(sched_cpu, 2),
        "cpu_ms_per_fire": round(sched_cpu / a.schedules * 1000, 3),
        "burst_drained_s": sched["burst"]["drained_s_received"],
    }
    say(f"bench.token --tokens {a.tokens}")
    token, _ = run_bench(["bench.token", "--tokens", str(a.tokens)])
    out["token"] = {
        "tokens": a.tokens,
        "cpu_s": token["cpu_seconds"],
        "cpu_ms_per_refresh": round(token["cpu_seconds"] / a.tokens * 1000, 3),
    }
    say(f"bench.poller --scenario short --executions {a.executions}")
    poller, _ = run_bench(
        [
            "bench.poller",
            "--scenario",
            "both",
            "--executions",
            str(a.executions),
            "--long-executions",
            str(a.long_executions),
            "--instances",
            str(a.instances),
        ]
    )
    out["poller"] = poller_costs(poller["scenarios"])
    say(f"outbox pipeline --events {a.events}")
    out["outbox"] = asyncio.run(outbox_cost(a.events))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
