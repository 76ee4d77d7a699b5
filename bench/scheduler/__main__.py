"""Scheduler benchmark: a burst of due schedules, and steady-state lateness. One JSON object.

    python -m bench.scheduler [--schedules 10000] [--spread-s 120] [--slots 60] [--no-baseline]
                              [--skip-burst] [--skip-steady] [--fetch-max-wait-ms 20]
                              [--traced] [--profile PATH]

The scheduler runs as its own process (`python -m services.scheduler`, default settings) on a
local Tansu broker and a fresh PostgreSQL database (or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
when set); this process seeds schedules straight into its tables and reads `schedule.due`
from the broker without a consumer group.

burst:  N schedules due at the same instant T. Reported: seconds from T until the last
        schedule.due was received here, and until the last one's record timestamp (set when
        the relay handed it to the Kafka client).
steady: N schedules whose fire times are spread over `--spread-s` seconds in `--slots`
        instants (as cron fires on minute boundaries: 10,000 over an hour is 167 per minute;
        the default compresses the hour into 120 s, 60 slots of 167 every 2 s, a denser load
        than the real hour). Reported: lateness p50/p99/max from each fire time to receipt
        here (an upper bound: it includes the reader's fetch) and to the record timestamp.
        `--spread-s 3600` runs the real hour.

Both report the scheduler process's CPU seconds over the scenario (scheduler_cpu_s), a
figure other load on a shared machine moves far less than the wall times.

Receipt here lags the record timestamp by the reader's fetch: Tansu holds a fetch for much of
`fetch_max_wait_ms` even when records arrive meanwhile (Kafka answers at once), so receipt is
up to that much later than the broker had the record (`--fetch-max-wait-ms`, 20 by default).

--traced: the scheduler builds its spans and exports them over OTLP/HTTP, as to Jaeger, to an
        endpoint in this process that counts them by name (spans_exported): what tracing
        costs, and whether every run's spans arrive. --profile PATH: the scheduler runs under
        cProfile, stats written to PATH.burst and PATH.steady.

baseline: the same schedules at the same fire times, run by APScheduler 4.0.0a6 with its
        PostgreSQL data store on the same database (apscheduler_side.py), right after ours;
        reported: when all jobs ran (burst) and job lateness (steady), and the ratio
        baseline / ours. `--no-baseline` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from amclocal.ports import free_port
from bench.infra import Infra, infra
from bench.scheduler.apscheduler_side import run_baseline
from bench.scheduler.span_sink import span_sink
from services.scheduler.runtime import MIGRATIONS
from shared.contract import ScheduleDue, Topics
from shared.db import apply_migrations
from shared.topics_admin import contract_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.dumps({"timezone": "UTC", "cron": "0 9 * * *"})


@dataclass
class Received:
    fire_times: dict[str, datetime] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)
    stamped: dict[str, float] = field(default_factory=dict)
    records: int = 0


@dataclass(frozen=True)
class Options:
    """How the scheduler process runs: under cProfile (stats written to `profile` + the
    scenario's name on exit), and with tracing on (spans built and exported as in a deployment
    with Jaeger; here to a port nobody listens on, so the cost is the service's alone)."""

    profile: str | None = None
    traced: bool = False
    fetch_max_wait_ms: int = 20


@contextmanager
def service(
    env: Infra, schema: str, port: int, options: Options, name: str, sink_port: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    tracing = (
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            # As deployed (deploy/k8s/base/scheduler.yaml): room for a burst's 2N spans.
            "OTEL_BSP_MAX_QUEUE_SIZE": "32768",
        }
        if sink_port is not None
        else {}
    )
    proc_env = {
        **os.environ,
        "SCHEDULER_DATABASE_URL": env.database_url,
        "SCHEDULER_DB_SCHEMA": schema,
        "SCHEDULER_HTTP_PORT": str(port),
        "SCHEDULER_HTTP_HOST": "127.0.0.1",
        "KAFKA_BOOTSTRAP_SERVERS": env.bootstrap,
        "KAFKA_TOPIC_PREFIX": f"{env.uid}.{schema}.",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LOG_LEVEL": "WARNING",
        **tracing,
    }
    command = (
        [
            "-m",
            "cProfile",
            "-o",
            f"{options.profile}.{name}",
            "-m",
            "bench.scheduler.profiled_service",
        ]
        if options.profile
        else ["-m", "services.scheduler"]
    )
    proc = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=proc_env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process used so far: unlike wall time, barely moved by
    other work on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(port: int) -> None:
    async with httpx.AsyncClient() as http:
        # Two minutes: start-up alone takes tens of seconds on a busy shared machine.
        for _ in range(1200):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the scheduler did not become ready")


async def seed(env: Infra, schema: str, fire_times: list[datetime]) -> None:
    conn = await asyncpg.connect(env.database_url)
    try:
        await conn.executemany(
            f"""INSERT INTO "{schema}".schedules (id, user_id, instance_id, advertiser_id,
                    marketplace_id, workflow_id, output_format, timezone, spec, window_rule,
                    next_fire_at, created_at, updated_at)
                VALUES ($1, 'user-1', 'amc-1', 'adv-1', 'ATVPDKIKX0DER', 'wf-1', 'CSV', 'UTC',
                        $2::jsonb, '{{"type": "MOST_RECENT_DAY"}}'::jsonb, $3, now(), now())""",
            [(uuid.uuid4(), SPEC, t) for t in fire_times],
        )
        # The loop sleeps until the earliest fire time it knew: tell it about the new ones,
        # as the API does.
        await conn.execute("SELECT pg_notify($1, '')", f"amc_scheduler_{schema}"[:63])
    finally:
        await conn.close()


async def read(
    bootstrap: str, topic: str, expected: int, received: Received, fetch_max_wait_ms: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while len(received.at) < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for messages in batches.values():
                for m in messages:
                    received.records += 1
                    due = ScheduleDue.from_bytes(m.value)
                    key = str(due.run_id)
                    received.at.setdefault(key, now)
                    received.stamped.setdefault(key, m.timestamp / 1000)
                    received.fire_times[key] = due.fire_time
    finally:
        await consumer.stop()


async def runs_written(env: Infra, schema: str, count: int) -> float:
    """When the firing loop had committed every run (polled: a slight overestimate)."""
    conn = await asyncpg.connect(env.database_url)
    try:
        sql = f'SELECT count(*) FROM "{schema}".schedule_runs'
        while True:
            if await conn.fetchval(sql) >= count:
                return time.time()
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def scenario(
    env: Infra, name: str, count: int, fire_times_of: Any, options: Options
) -> dict[str, Any]:
    schema = f"{env.uid}_{name}"
    topics = Topics(f"{env.uid}.{schema}.")
    await ensure_topics(env.bootstrap, contract_topics(topics))
    await apply_migrations(env.database_url, schema, MIGRATIONS)
    port = free_port()
    received = Received()
    sink_port = free_port() if options.traced else None
    with (
        span_sink(sink_port) if sink_port is not None else nullcontext() as sink,
        service(env, schema, port, options, name, sink_port) as proc,
    ):
        await wait_ready(port)
        await asyncio.sleep(2.0)  # let start-up work settle
        fire_times: list[datetime] = fire_times_of(datetime.now(UTC))
        reader = asyncio.create_task(
            read(
                env.bootstrap,
                topics.name(ScheduleDue.topic),
                count,
                received,
                options.fetch_max_wait_ms,
            )
        )
        cpu_before = cpu_s(proc.pid)
        seeded = time.perf_counter()
        await seed(env, schema, fire_times)
        seed_s = time.perf_counter() - seeded
        last_fire = max(fire_times).timestamp()
        written = asyncio.create_task(runs_written(env, schema, count))
        await asyncio.wait_for(reader, timeout=max(120.0, last_fire - time.time() + 120))
        written_at = await written
        cpu = cpu_s(proc.pid) - cpu_before
    late_at = [received.at[k] - received.fire_times[k].timestamp() for k in received.at]
    late_stamp = [
        received.stamped[k] - received.fire_times[k].timestamp() for k in received.stamped
    ]
    return {
        "runs_written_s": round(written_at - last_fire, 3),
        "events": len(received.at),
        "records": received.records,
        "seed_s": round(seed_s, 3),
        "scheduler_cpu_s": round(cpu, 2),
        "late_at": late_at,
        "late_stamp": late_stamp,
        # Counted once the service has stopped (it flushes its spans on the way out).
        "spans": dict(sink.by_name) if sink is not None else None,
    }


def ms(value: float) -> float:
    return round(value * 1000, 1)


def lateness_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": ms(percentile(values, 50)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values)),
    }


async def baseline(
    env: Infra, name: str, count: int, fire_times_of: Callable[[datetime], list[datetime]]
) -> dict[str, Any]:
    """APScheduler 4 on the same schedules: lateness of each job's run from its fire time."""
    result = await run_baseline(env.database_url, f"{env.uid}_aps_{name}", count, fire_times_of)
    if "unavailable" in result:
        return result
    ran: dict[str, float] = result["ran"]
    late = [ran[k] - result["fire"][k] for k in ran]
    return {
        "scheduler": "APScheduler 4.0.0a6, SQLAlchemy data store on the same PostgreSQL",
        "jobs_ran": len(ran),
        "of": count,
        "seeded_ahead_s": result["seeded_ahead_s"],
        "late": late,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--spread-s", type=float, default=120.0)
    parser.add_argument("--slots", type=int, default=60)
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=20)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip APScheduler's run of the same schedules"
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="profile the scheduler: cProfile stats to PATH.<scenario>"
    )
    parser.add_argument(
        "--traced", action="store_true", help="the scheduler builds and exports its spans"
    )
    args = parser.parse_args()
    options = Options(args.profile, args.traced, args.fetch_max_wait_ms)
    n = args.schedules
    out: dict[str, Any] = {"benchmark": "scheduler", "schedules": n, "cpus": os.cpu_count()}
    step = args.spread_s / args.slots

    def burst_times(now: datetime) -> list[datetime]:
        return [now + timedelta(seconds=3)] * n

    def spread(now: datetime) -> list[datetime]:
        start = now + timedelta(seconds=3)
        return [start + timedelta(seconds=step * (i % args.slots)) for i in range(n)]

    async with infra() as env:
        if not args.skip_burst:
            burst = await scenario(env, "burst", n, burst_times, options)
            drained = max(burst["late_at"])
            out["burst"] = {
                "runs_written_s": burst["runs_written_s"],
                "events": burst["events"],
                "records": burst["records"],
                "drained_s_received": round(drained, 3),
                "drained_s_record_timestamp": round(max(burst["late_stamp"]), 3),
                "first_received_s": round(min(burst["late_at"]), 3),
                "scheduler_cpu_s": burst["scheduler_cpu_s"],
                "target_s": 1.0,
            }
            if burst["spans"] is not None:
                out["burst"]["spans_exported"] = burst["spans"]
            if not args.no_baseline:
                peer = await baseline(env, "burst", n, burst_times)
                if "late" in peer:
                    late = peer.pop("late")
                    peer["all_ran_s"] = round(max(late), 3)
                    peer["first_ran_s"] = round(min(late), 3)
                    peer["ratio_baseline_over_ours"] = round(max(late) / drained, 1)
                out["burst"]["baseline"] = peer
        if not args.skip_steady:
            steady = await scenario(env, "steady", n, spread, options)
            p99 = percentile(steady["late_at"], 99)
            out["steady"] = {
                "events": steady["events"],
                "records": steady["records"],
                "spread_s": args.spread_s,
                "slots": args.slots,
                "per_slot": n // args.slots,
                "scheduler_cpu_s": steady["scheduler_cpu_s"],
                "lateness_ms_received": lateness_ms(steady["late_at"]),
                "lateness_ms_record_timestamp": lateness_ms(steady["late_stamp"]),
                "target_p99_ms": 50,
            }
            if steady["spans"] is not None:
                out["steady"]["spans_exported"] = steady["spans"]
            if not args.no_baseline:
                peer = await baseline(env, "steady", n, spread)
                if "late" in peer:
                    late = peer.pop("late")
                    peer["lateness_ms_job_ran"] = lateness_ms(late)
                    peer["ratio_p99_baseline_over_ours"] = round(percentile(late, 99) / p99, 1)
                out["steady"]["baseline"] = peer
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
