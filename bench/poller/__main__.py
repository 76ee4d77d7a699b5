"""Poller: N executions in flight across M AMC instances with simulated durations.

The AMC simulator (AMC as published: waitUntil an hour in the past, so the poller's own
schedule alone decides) and the poller each run as their own process (the poller exactly
as deployed: `python -m services.poller`, with its default poll schedule unless told
otherwise), so the CPU seconds are the poller's own. Requests go in as execution.requested
events; tokens as token.refreshed. Two scenarios, each with a fresh broker topic set,
schema and simulator:

- short: executions of 5-20 s, in real time;
- long: executions of 10-60 minutes, time-scaled by --time-scale (durations and the poll
  schedule both divided by it); figures are reported back in AMC's time (multiplied by it).

Prints one JSON object with, per scenario:
- GETs per execution per minute of its life at AMC (p50, p99, max);
- completion detection: how long after AMC's SUCCEEDED (the simulator's end time) the poller
  saw it, and how long until execution.completed was written (results downloaded first);
- AMC requests per instance per second (max over any 1 s window, from the simulator's log;
  in the long scenario this is the scaled rate), 429 answers, and the most executions
  running at once on one instance;
- poller CPU seconds per 1,000 status polls, with the goal (issue 24: 4 s) and the ratio to it.

    python -m bench.poller                                     # both scenarios, full size
    python -m bench.poller --scenario short --executions 200 --instances 4   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from amclocal.broker import wait_for_port
from amclocal.ports import free_port
from amclocal.simulator import RouteKind, SimControl, WorkflowBehavior
from bench.infra import Infra, infra
from shared.clients import LwaClient
from shared.contract import (
    Event,
    ExecutionRequested,
    Origin,
    OriginKind,
    TokenRefreshed,
    Topics,
    WorkflowRun,
)
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "amzn1.application-oa2-client.bench"
CLIENT_SECRET = "bench-client-secret"
# The poller's own default schedule (PollerSettings.poll_intervals_s).
POLL_INTERVALS = [5.0, 10.0, 15.0, 30.0, 60.0]
# Issue 24: the poller's CPU, all its work (requests in, submissions, polls, downloads, events
# out), per 1,000 status polls.
GOAL_CPU_S_PER_1000_POLLS = 4.0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 3)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> float:
    """SIGTERM, then SIGKILL after the timeout; returns how long the process took to stop."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return time.monotonic() - started


async def setup_simulator(sim: SimControl, args: argparse.Namespace) -> list[str]:
    """One user per instance; workflows whose running times spread over the given range."""
    await sim.register_client(CLIENT_ID, CLIENT_SECRET)
    # The contract guard checks every exchange against docs/amc in the tests; here it would
    # only slow the simulator's answers down.
    await sim.configure(
        pending_seconds=args.pending_s, result_rows=args.result_rows, contract_guard=False
    )
    for n in range(args.instances):
        await sim.register_user(f"user-{n:03d}", f"Atzr|bench-{n:03d}")
        await sim.register_instance(f"amcbench{n:03d}", f"ENTITY{n:03d}", "ATVPDKIKX0DER")
    workflows = []
    steps = max(args.workflows, 1)
    for k in range(steps):
        share = k / (steps - 1) if steps > 1 else 0.0
        seconds = args.running_min_s + share * (args.running_max_s - args.running_min_s)
        workflow_id = f"wf-{k:02d}"
        await sim.set_workflow(WorkflowBehavior(workflow_id=workflow_id, running_seconds=seconds))
        workflows.append(workflow_id)
    return workflows


async def publish(bootstrap: str, topics: Topics, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topics.name(e.topic), e.to_bytes(), key=e.key()) for e in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def run(args: argparse.Namespace, env_infra: Infra) -> dict[str, Any]:
    work = ROOT / "var" / "bench" / f"poller-{env_infra.uid}"
    work.mkdir(parents=True, exist_ok=True)
    key = KeyRing.generate_key()
    keys = KeyRing([key])
    topics = Topics(f"{env_infra.uid}.")
    schema = f"{env_infra.uid}_poller"
    await ensure_topics(env_infra.bootstrap, contract_topics(topics))

    base_env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}"}
    sim_port = free_port()
    sim_proc = spawn(
        [
            *(sys.executable, "-m", "amclocal.simulator", "--port", str(sim_port), "--seed", "1"),
            *("--daily-execution-cap", "0"),  # a benchmark runs thousands a day
        ],
        base_env,
        work / "simulator.log",
    )
    poller_proc: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port("127.0.0.1", sim_port, timeout_s=30)
        sim_url = f"http://127.0.0.1:{sim_port}"
        async with SimControl(sim_url, httpx.AsyncClient(timeout=120)) as sim:
            workflows = await setup_simulator(sim, args)
            tokens: list[Event] = []
            async with LwaClient(sim_url, CLIENT_ID, CLIENT_SECRET) as lwa:
                for n in range(args.instances):
                    granted = await lwa.refresh(f"Atzr|bench-{n:03d}")
                    tokens.append(
                        TokenRefreshed(
                            user_id=f"user-{n:03d}",
                            access_token_encrypted=keys.encrypt(
                                granted.access_token.get_secret_value()
                            ),
                            expires_at=datetime.now(UTC) + timedelta(hours=1),
                        )
                    )
            poller_env = {
                **base_env,
                "DATABASE_URL": env_infra.database_url,
                "POLLER_DB_SCHEMA": schema,
                "POLLER_DB_POOL_MAX": "20",
                "KAFKA_BOOTSTRAP_SERVERS": env_infra.bootstrap,
                "KAFKA_TOPIC_PREFIX": topics.prefix,
                "KAFKA_SESSION_TIMEOUT_MS": "3000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
                "POLLER_AMC_BASE_URL": sim_url,
                "LWA_CLIENT_ID": CLIENT_ID,
                "EVENT_ENCRYPTION_KEYS": key,
                "POLLER_RESULT_DIR": str(work / "results"),
                "POLLER_HTTP_HOST": "127.0.0.1",
                "POLLER_HTTP_PORT": str(free_port()),
                "POLLER_POLL_INTERVALS_S": json.dumps(args.poll_intervals),
                "POLLER_MAX_CONCURRENT_POLLS": str(args.max_concurrent_polls),
                "POLLER_CLAIM_BATCH_SIZE": "200",
                "POLLER_LOOP_INTERVAL_S": "0.2",
                "POLLER_DAILY_EXECUTIONS_PER_INSTANCE": "0",
                "LOG_LEVEL": "WARNING",
            }
            entry = ["-m", "services.poller"]
            if args.profile:
                entry = ["-m", "bench.poller.profiled", str(work / "poller.prof")]
            poller_proc = spawn([sys.executable, *entry], poller_env, work / "poller.log")
            pool = await asyncpg.create_pool(env_infra.database_url, min_size=1, max_size=2)
            assert pool is not None
            try:
                await wait_ready(poller_env["POLLER_HTTP_PORT"], poller_proc)
                await publish(env_infra.bootstrap, topics, tokens)
                await asyncio.sleep(1.0)
                requests: list[Event] = []
                for i in range(args.executions):
                    n = i % args.instances
                    request_id = f"bench-{i:05d}"
                    requests.append(
                        ExecutionRequested(
                            request_id=request_id,
                            origin=Origin(kind=OriginKind.EXTERNAL, id=request_id),
                            run=WorkflowRun(
                                user_id=f"user-{n:03d}",
                                instance_id=f"amcbench{n:03d}",
                                advertiser_id=f"ENTITY{n:03d}",
                                marketplace_id="ATVPDKIKX0DER",
                                workflow_id=workflows[(i // args.instances) % len(workflows)],
                                time_window_start=datetime(2024, 1, 1, tzinfo=UTC),
                                time_window_end=datetime(2024, 1, 8, tzinfo=UTC),
                                parameters={"i": i},
                            ),
                        )
                    )
                cpu_start = process_cpu_seconds(poller_proc.pid)
                started = time.monotonic()
                await publish(env_infra.bootstrap, topics, requests)
                finished = await wait_all(pool, schema, args.executions, args.timeout_s)
                wall = time.monotonic() - started
                cpu = process_cpu_seconds(poller_proc.pid) - cpu_start
                rows = await pool.fetch(
                    f"""SELECT status, amc_execution_id, poll_count,
                               extract(epoch FROM amc_finished_seen_at) AS seen,
                               extract(epoch FROM completed_at) AS completed
                        FROM "{schema}".executions"""
                )
            finally:
                await pool.close()
            views = {v.execution_id: v for v in await sim.executions()}
            stats = await sim.stats()
            gets = await sim.requests(kind=RouteKind.GET)
    finally:
        shutdown = stop(poller_proc) if poller_proc is not None else 0.0
        stop(sim_proc)

    scale = args.time_scale
    polls = sum(int(r["poll_count"]) for r in rows)
    per_1000 = round(cpu / polls * 1000, 3) if polls else None
    detect, publish_lag = [], []
    for r in rows:
        view = views.get(r["amc_execution_id"])
        if view is None or view.end_time is None or r["seen"] is None:
            continue
        detect.append((float(r["seen"]) - view.end_time) * scale)
        if r["completed"] is not None and r["status"] == "SUCCEEDED":
            publish_lag.append((float(r["completed"]) - view.end_time) * scale)
    gets_by_execution: dict[str, int] = {}
    for record in gets:
        if record.execution_id is not None:
            gets_by_execution[record.execution_id] = (
                gets_by_execution.get(record.execution_id, 0) + 1
            )
    per_minute = [
        gets_by_execution.get(v.execution_id, 0) / ((v.end_time - v.creation_time) * scale / 60)
        for v in views.values()
        if v.end_time is not None and v.end_time > v.creation_time
    ]
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    per_instance = stats.instances.values()
    return {
        "executions": args.executions,
        "instances": args.instances,
        "time_scale": scale,
        "amc_running_seconds": [args.running_min_s * scale, args.running_max_s * scale],
        "pending_seconds": args.pending_s * scale,
        "poll_intervals_s": [i * scale for i in args.poll_intervals],
        "finished": finished,
        "statuses": by_status,
        "wall_seconds": round(wall, 1),
        "gets_per_execution_per_minute": {
            "p50": percentile(per_minute, 50),
            "p99": percentile(per_minute, 99),
            "max": percentile(per_minute, 100),
        },
        "detection_after_amc_succeeded_s": {
            "p50": percentile(detect, 50),
            "p99": percentile(detect, 99),
            "max": percentile(detect, 100),
            "within_last_poll_interval": round(
                sum(d <= args.poll_intervals[-1] * scale for d in detect) / max(len(detect), 1),
                4,
            ),
            "samples": len(detect),
        },
        "completed_after_amc_succeeded_s": {
            "p50": percentile(publish_lag, 50),
            "p99": percentile(publish_lag, 99),
        },
        "amc_requests_per_instance_per_s_max": max((s.max_rps for s in per_instance), default=0),
        "amc_requests_total": sum(s.requests for s in per_instance),
        "throttled_429": sum(s.throttled for s in per_instance),
        "max_running_seen_per_instance": max((s.max_running_seen for s in per_instance), default=0),
        "poller_shutdown_seconds": round(shutdown, 1),
        "polls": polls,
        "poller_cpu_seconds": round(cpu, 2),
        "poller_cpu_seconds_per_1000_polls": per_1000,
        # Issue 24's goal for this figure, and the figure as a share of it (<= 1: met).
        "goal_cpu_seconds_per_1000_polls": GOAL_CPU_S_PER_1000_POLLS,
        "ratio_to_goal": round(per_1000 / GOAL_CPU_S_PER_1000_POLLS, 3) if per_1000 else None,
    }


async def wait_ready(port: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("the poller exited during start-up; see its log")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the poller did not become ready")


async def wait_all(pool: asyncpg.Pool[Any], schema: str, total: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = int(
            await pool.fetchval(
                f"""SELECT count(*) FROM "{schema}".executions
                    WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')"""
            )
        )
        if done >= total:
            break
        await asyncio.sleep(1.0)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poller", description=__doc__)
    parser.add_argument("--scenario", choices=["short", "long", "both"], default="both")
    parser.add_argument("--executions", type=int, default=2000, help="short scenario")
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--running-min-s", type=float, default=5.0, help="short scenario")
    parser.add_argument("--running-max-s", type=float, default=20.0, help="short scenario")
    parser.add_argument("--long-executions", type=int, default=200)
    parser.add_argument(
        "--time-scale", type=float, default=30.0, help="long scenario: AMC seconds per second"
    )
    parser.add_argument("--pending-s", type=float, default=1.0)
    parser.add_argument("--workflows", type=int, default=8, help="distinct simulated durations")
    parser.add_argument("--result-rows", type=int, default=100)
    parser.add_argument(
        "--poll-intervals", type=float, nargs="+", default=POLL_INTERVALS, help="AMC seconds"
    )
    parser.add_argument("--max-concurrent-polls", type=int, default=100)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the poller process")
    args = parser.parse_args(argv)

    def scenario(name: str) -> argparse.Namespace:
        if name == "short":
            return argparse.Namespace(**{**vars(args), "time_scale": 1.0})
        scale = args.time_scale
        return argparse.Namespace(
            **{
                **vars(args),
                "executions": args.long_executions,
                "running_min_s": 600 / scale,
                "running_max_s": 3600 / scale,
                "pending_s": args.pending_s / scale,
                "poll_intervals": [i / scale for i in args.poll_intervals],
            }
        )

    names = ["short", "long"] if args.scenario == "both" else [args.scenario]

    async def go() -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name in names:
            print(f"bench.poller: scenario {name}", file=sys.stderr)
            async with infra() as env_infra:
                results[name] = await run(scenario(name), env_infra)
        return {"benchmark": "poller", "scenarios": results}

    print(json.dumps(asyncio.run(go())))


if __name__ == "__main__":
    main()
