"""The capacity model's check: a fraction of the workload on the real stack, time-compressed.

The stack is amclocal's ServiceStack (simulator and the five services as processes, one
replica each unless told otherwise) on a local broker and database. Time is compressed
twice over:
- the day's schedule fires are spread over `--minutes` minutes: the first minute takes the
  peak hour's on-the-hour burst (peak_hour_share x on_the_hour_share of the fires, all due
  at one instant), the rest are spread evenly one instant per second after it;
- AMC's executions last `--running-s` (pending `--pending-s`) with the poll schedule
  `--poll-intervals`, and the model is asked for that same shape, so its polls per
  execution are the run's;
- AMC's daily cap, the collections' daily share and the active-collection limit are off, so
  every collection's weeks run in the same minutes.
Schedules are seeded into the scheduler's table (as bench.scheduler does); users, instances
and collections go through the simulator's and the services' APIs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from amclocal.ports import free_ports
from amclocal.simulator import SimControl
from amclocal.stack import SERVICE_NAMES, ServiceStack, new_keys
from bench.capacity.measure import Sampler, event_counts, table_sizes
from bench.capacity.model import Workload
from bench.infra import infra

MARKETPLACE = "ATVPDKIKX0DER"
SCHEMAS = ("scheduler", "poller", "collector", "token", "notifier")


def say(message: str) -> None:
    print(f"[capacity] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunConfig:
    scale: float = 0.1
    minutes: float = 4.0
    pending_s: float = 1.0
    running_s: float = 3.0
    poll_intervals: tuple[float, ...] = (2.0, 3.0, 5.0)
    replicas: int = 1
    settle_minutes: float = 20.0
    idle_s: float = 30.0
    keep: bool = False

    def workload(self) -> Workload:
        return replace_timing(Workload().scaled(self.scale), self)


def replace_timing(w: Workload, cfg: RunConfig) -> Workload:
    return replace(w, amc_pending_s=cfg.pending_s, amc_running_s=cfg.running_s)


def fire_instants(w: Workload, start: datetime, minutes: float) -> list[datetime]:
    """One fire time per schedule: the burst at `start`, the rest one second apart over
    the window (seconds repeat when there are more schedules than seconds)."""
    n = w.schedules
    burst = round(n * w.peak_hour_share * w.on_the_hour_share)
    seconds = max(1, int(minutes * 60) - 1)
    rest = n - burst
    return [start] * burst + [
        start + timedelta(seconds=1 + (i * seconds) // max(rest, 1)) for i in range(rest)
    ]


async def provision(w: Workload, sim: SimControl, stack: ServiceStack) -> list[tuple[str, str]]:
    """Users (one per advertiser) and instances at the simulator; tokens at the token
    service. Returns (user, instance) of every instance."""
    await sim.configure(result_rows=20)
    headers = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    gate = asyncio.Semaphore(16)
    pairs: list[tuple[str, str]] = []
    async with httpx.AsyncClient(timeout=60) as http:

        async def advertiser(a: int) -> None:
            async with gate:
                user, refresh = f"cap-user-{a:05d}", f"Atzr|cap-{uuid.uuid4().hex}"
                await sim.register_user(user, refresh)
                for i in range(w.instances_per_advertiser):
                    instance = f"capinst{a:05d}x{i}"
                    await sim.register_instance(instance, f"ENTITYCAP{a:05d}", MARKETPLACE)
                    pairs.append((user, instance))
                answer = await http.put(
                    f"{stack.url('token')}/tokens/{user}",
                    json={"refresh_token": refresh},
                    headers=headers,
                )
                answer.raise_for_status()

        await asyncio.gather(*(advertiser(a) for a in range(w.advertisers)))
    return sorted(pairs)


async def seed_schedules(
    dsn: str, pairs: list[tuple[str, str]], w: Workload, fires: list[datetime]
) -> None:
    rows = []
    for n, at in enumerate(fires):
        user, instance = pairs[n // w.schedules_per_instance]
        spec = json.dumps({"timezone": "UTC", "cron": f"{at.minute} {at.hour} * * *"})
        advertiser = "ENTITYCAP" + user.rsplit("-", 1)[1]
        rows.append((uuid.uuid4(), user, instance, advertiser, f"cap-wf-{n % 50}", spec, at))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            """INSERT INTO scheduler.schedules (id, user_id, instance_id, advertiser_id,
                   marketplace_id, workflow_id, output_format, timezone, spec, window_rule,
                   next_fire_at, created_at, updated_at)
               VALUES ($1, $2, $3, $4, 'ATVPDKIKX0DER', $5, 'CSV', 'UTC', $6::jsonb,
                       '{"type": "MOST_RECENT_DAY"}'::jsonb, $7, now(), now())""",
            rows,
        )
        # The loop sleeps until the earliest fire time it knew: wake it, as the API does.
        await conn.execute("SELECT pg_notify('amc_scheduler_scheduler', '')")
    finally:
        await conn.close()


async def create_collections(
    stack: ServiceStack, pairs: list[tuple[str, str]], w: Workload
) -> None:
    headers = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    end = datetime.now(UTC).date() - timedelta(days=3)
    start = end - timedelta(days=7 * w.weeks_per_collection - 1)
    step = max(1, len(pairs) // max(w.collections, 1))
    async with httpx.AsyncClient(timeout=60) as http:
        for k in range(w.collections):
            user, instance = pairs[(k * step) % len(pairs)]
            body = {
                "user_id": user,
                "instance_id": instance,
                "advertiser_id": "ENTITYCAP" + user.rsplit("-", 1)[1],
                "marketplace_id": MARKETPLACE,
                "workflow_id": f"cap-coll-{k}",
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
                "daily_share": 0,
            }
            answer = await http.post(
                f"{stack.url('collector')}/collections", json=body, headers=headers
            )
            answer.raise_for_status()


async def wait_done(dsn: str, expected: int, timeout_s: float) -> dict[str, Any]:
    """Until every execution has ended and every outbox is drained (bounded)."""
    began = time.monotonic()
    conn = await asyncpg.connect(dsn)
    left = {}
    try:
        while time.monotonic() - began < timeout_s:
            done = await conn.fetchval(
                "SELECT count(*) FROM poller.executions WHERE completed_at IS NOT NULL"
            )
            unsent = 0
            for schema in SCHEMAS:
                unsent += await conn.fetchval(
                    f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"
                )
            left = {"executions": expected - done, "outbox_unsent": unsent}
            if done >= expected and not unsent:
                break
            say(f"waiting: {left}")
            await asyncio.sleep(5)
    finally:
        await conn.close()
    return {"seconds": round(time.monotonic() - began, 1), "left": left}


async def execution_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(sum(poll_count), 0) AS polls FROM poller.executions"
        )
    finally:
        await conn.close()
    assert row is not None  # an aggregate always answers one row
    return {"executions": int(row["n"]), "polls": int(row["polls"])}


async def run(cfg: RunConfig) -> dict[str, Any]:
    w = cfg.workload()
    out: dict[str, Any] = {
        "workload": {"scale": cfg.scale, **w.__dict__},
        "replicas": cfg.replicas,
        "poll_intervals_s": list(cfg.poll_intervals),
        "fires_spread_minutes": cfg.minutes,
    }
    work = Path(tempfile.mkdtemp(prefix="amc-capacity-"))
    async with infra() as env:
        *ports, sim_port = free_ports(len(SERVICE_NAMES) + 1)
        stack = ServiceStack(
            bootstrap=env.bootstrap,
            database_url=env.database_url,
            log_dir=work,
            keys=new_keys(),
            ports=dict(zip(SERVICE_NAMES, ports, strict=True)),
            simulator_port=sim_port,
            replicas=cfg.replicas,
            topic_prefix=f"{env.uid}.",
            extra_env={
                "LOG_LEVEL": "WARNING",
                "OTEL_TRACES_EXPORTER": "none",
                "POLLER_POLL_INTERVALS_S": json.dumps(list(cfg.poll_intervals)),
                "POLLER_DAILY_EXECUTIONS_PER_INSTANCE": "0",
                "AMC_SIM_DAILY_EXECUTION_CAP": "0",
                "COLLECTOR_MAX_ACTIVE_COLLECTIONS": str(max(1, w.collections)),
            },
        )
        try:
            say(f"starting the stack in {work}")
            await stack.start()
            async with httpx.AsyncClient(timeout=60) as http:
                sim = SimControl(stack.simulator_url, http)
                await sim.configure(pending_seconds=cfg.pending_s, running_seconds=cfg.running_s)
                say(f"provisioning {w.advertisers} users, {w.instances} instances")
                pairs = await provision(w, sim, stack)
            pids = {name: proc.pid for name, proc in stack.processes.items()}
            # A quiet minute first: what each service spends doing nothing (its loops,
            # consumers' fetches and heartbeats), per replica and second.
            idle = Sampler(env.database_url, pids)
            await idle.start()
            await asyncio.sleep(cfg.idle_s)
            quiet = idle.spent()
            await idle.stop()
            out["idle_cpu_ms_per_replica_s"] = {
                svc: round(cpu / cfg.idle_s / cfg.replicas * 1000, 2) for svc, cpu in quiet.items()
            }
            sampler = Sampler(env.database_url, pids)
            before = await event_counts(env.bootstrap, stack.topics)
            start = (datetime.now(UTC) + timedelta(seconds=80)).replace(second=0, microsecond=0)
            fires = fire_instants(w, start, cfg.minutes)
            say(f"seeding {len(fires)} schedules, first fire {start.time()}")
            await seed_schedules(env.database_url, pairs, w, fires)
            await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            await sampler.start()
            say(f"creating {w.collections} collections of {w.weeks_per_collection} weeks")
            await create_collections(stack, pairs, w)
            expected = w.schedules + w.collections * w.weeks_per_collection
            out["settle"] = await wait_done(env.database_url, expected, cfg.settle_minutes * 60)
            out["wall_seconds_from_first_fire"] = round(
                (datetime.now(UTC) - start).total_seconds(), 1
            )
            measured = await sampler.stop()
            after = await event_counts(env.bootstrap, stack.topics)
            measured["events"] = {t: after.get(t, 0) - before.get(t, 0) for t in after}
            measured |= await table_sizes(env.database_url, SCHEMAS)
            measured |= await execution_counts(env.database_url)
            out["measured"] = measured
        finally:
            stack.stop()
            # Logs and result files: kept only when asked (a 1/10 run writes 150 MB).
            if not cfg.keep:
                shutil.rmtree(work, ignore_errors=True)
    out["work_dir"] = str(work) if cfg.keep else None
    return out
