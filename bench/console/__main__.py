"""Console: server time of every page against seeded services.

The AMC/LWA simulator, the five services and the console run as their own processes
(`amclocal.stack.ServiceStack`, as the browser tests start them), on a fresh database and
topic set. Templates (a schedule, a collection, an execution, a notification rule) are made
through the services' APIs; the services' own tables are then seeded in bulk from them
(bench/console/seed.py): 10,000 schedules (one with a long run history), 100 finished
collections of 156 weeks, 100,000 finished executions over 20 instances. The console reads
all of it only through the management APIs, as in production.

Each page is fetched once to warm up, then `--rounds` times in sequence; its server time is
the wall time of the HTTP request from this process to the console on 127.0.0.1 (the
console has no Server-Timing header), which includes the console's calls to the services.
Prints one JSON object (p50/p95/max ms per page); progress goes to stderr.

    python -m bench.console                      # full size, 20 rounds
    python -m bench.console --executions 10000 --rounds 5   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from amclocal.demo import DEMO
from amclocal.ports import free_port
from amclocal.stack import SERVICE_NAMES, ServiceStack, new_keys
from bench.console import seed
from bench.infra import infra

LIMIT_MS = 200.0
# Pages whose API call makes the poller ask AMC: the poller spaces AMC calls per instance
# ((1 + 2 x 0.05) / 10 req/s = 110 ms), so back-to-back rounds would measure that queue.
AMC_BACKED = ("workflows (instance)", "workflow")
AMC_GAP_S = 0.15
RUN = {
    "workflow_id": DEMO.workflow_id,
    "instance_id": DEMO.instance_id,
    "user_id": DEMO.user_id,
    "advertiser_id": DEMO.advertiser_id,
    "marketplace_id": DEMO.marketplace_id,
}


def say(message: str) -> None:
    print(f"bench.console: {message}", file=sys.stderr, flush=True)


async def until(what: str, check: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")


async def templates(stack: ServiceStack) -> dict[str, str]:
    """One of each through the APIs; returns their ids."""
    headers = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        made = await http.post(
            f"{stack.url('scheduler')}/schedules",
            json={**RUN, "name": "bench template", "cron": "0 6 * * 1", "timezone": "UTC"},
        )
        made.raise_for_status()
        schedule_id = made.json()["id"]
        run = await http.post(f"{stack.url('scheduler')}/schedules/{schedule_id}/trigger")
        run.raise_for_status()
        run_id = run.json()["id"]

        async def finished_execution() -> str | None:
            found = await http.get(
                f"{stack.url('poller')}/executions",
                params={"origin_kind": "schedule", "origin_id": run_id},
            )
            listed = found.json()["executions"]
            done = listed and listed[0]["status"] == "SUCCEEDED"
            return str(listed[0]["execution_id"]) if done else None

        execution_id = await until("the template execution", finished_execution)
        made = await http.post(
            f"{stack.url('collector')}/collections",
            json={**RUN, "start_date": "2024-01-01", "end_date": "2024-01-14"},
        )
        made.raise_for_status()
        collection_id = made.json()["id"]

        async def collection_done() -> bool:
            found = await http.get(f"{stack.url('collector')}/collections/{collection_id}")
            return bool(found.json()["status"] == "COMPLETED")

        await until("the template collection", collection_done)
        rule = await http.post(
            f"{stack.url('notifier')}/notifications/rules",
            json={
                "name": "bench failures",
                "url": "json://bench:s3cret@127.0.0.1:9/hook/t0ken",
                "filter": {"event_types": ["execution.completed"], "statuses": ["FAILED"]},
            },
        )
        rule.raise_for_status()
    return {
        "schedule": schedule_id,
        "execution": execution_id,
        "collection": collection_id,
        "rule": rule.json()["id"],
    }


async def fill(stack: ServiceStack, ids: dict[str, str], args: argparse.Namespace) -> str:
    """Bulk rows; returns the id of one seeded 156-week collection."""
    prefix = stack.schema_prefix
    conn = await asyncpg.connect(stack.database_url)
    try:
        started = time.monotonic()
        await seed.schedules(conn, f"{prefix}scheduler", ids["schedule"], args.schedules)
        await seed.schedule_runs(conn, f"{prefix}scheduler", ids["schedule"], args.runs)
        await seed.collections(
            conn, f"{prefix}collector", ids["collection"], args.collections, args.weeks
        )
        await seed.instances(conn, f"{prefix}poller", args.instances)
        await seed.executions(
            conn, f"{prefix}poller", ids["execution"], args.executions, args.instances
        )
        for table in (
            "scheduler.schedules",
            "scheduler.schedule_runs",
            "collector.collections",
            "collector.collection_weeks",
            "poller.executions",
            "poller.instances",
        ):
            await conn.execute(f"ANALYZE {prefix}{table}")
        say(f"seeded in {time.monotonic() - started:.1f} s")
        big: str = await conn.fetchval(
            f"SELECT id::text FROM {prefix}collector.collections WHERE weeks_total = $1 LIMIT 1",
            args.weeks,
        )
        return big
    finally:
        await conn.close()


async def sign_in(http: httpx.AsyncClient, api_key: str) -> None:
    form = await http.get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, "no CSRF field on the sign-in form"
    answer = await http.post(
        "/signin", data={"name": "bench", "api_key": api_key, "csrf": token.group(1)}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in refused: {answer.status_code}")


def pages(ids: dict[str, str], big_collection: str, args: argparse.Namespace) -> dict[str, str]:
    demo = DEMO.instance_id
    return {
        "overview": "/",
        "schedules": "/schedules",
        "schedules?state=PAUSED&offset=500": "/schedules?state=PAUSED&offset=500",
        f"schedule ({args.runs} runs)": f"/schedules/{ids['schedule']}",
        "collections": "/collections",
        f"collection ({args.weeks} weeks)": f"/collections/{big_collection}",
        "executions": "/executions",
        "executions?status=FAILED&instance_id": "/executions?status=FAILED&instance_id=benchinst7",
        "executions?instance_id&offset=1000": "/executions?instance_id=benchinst3&offset=1000",
        # An instance with few executions: the newest-first scan finds no early match.
        "executions?instance_id (rare)": f"/executions?instance_id={demo}",
        "execution": f"/executions/{ids['execution']}",
        "users": "/users",
        "instances": "/instances",
        "instance": f"/instances/{demo}",
        "workflows (instance)": f"/workflows/{demo}",
        "workflow": f"/workflows/{demo}/{DEMO.workflow_id}",
        "rules": "/rules",
        "rule": f"/rules/{ids['rule']}",
        "audit": "/audit",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_pages(
    console: str, api_key: str, targets: dict[str, str], rounds: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=console, timeout=60) as http:
        await sign_in(http, api_key)
        for name, path in targets.items():
            first = await http.get(path)
            if first.status_code != 200:
                raise RuntimeError(f"{path} answered {first.status_code}: {first.text[:300]}")
            times = []
            for _ in range(rounds):
                if name in AMC_BACKED:
                    await asyncio.sleep(AMC_GAP_S)
                started = time.perf_counter()
                answer = await http.get(path)
                times.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
            results[name] = {
                "path": path,
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
                "max_ms": round(max(times), 1),
                "bytes": len(first.content),
            }
            say(f"{name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms")
    return results


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with infra() as where:
        log_dir = Path(tempfile.mkdtemp(prefix="bench-console-"))
        stack = ServiceStack(
            bootstrap=where.bootstrap,
            database_url=where.database_url,
            log_dir=log_dir,
            keys=new_keys(),
            ports={name: free_port() for name in SERVICE_NAMES},
            simulator_port=free_port(),
            topic_prefix=f"{where.uid}.",
            schema_prefix=f"{where.uid}_",
            extra_env={"POLLER_POLL_INTERVALS_S": "[0.5, 1.0]", "LOG_LEVEL": "WARNING"},
        )
        try:
            say(f"starting the services (logs in {log_dir})")
            await stack.start()
            async with httpx.AsyncClient(base_url=stack.simulator_url) as sim:
                fast = {"pending_seconds": 0.2, "running_seconds": 0.3, "result_rows": 5}
                (await sim.post("/_sim/config", json=fast)).raise_for_status()
            say("making templates through the APIs")
            ids = await templates(stack)
            say("seeding")
            big = await fill(stack, ids, args)
            console = await stack.start_console(free_port())
            say(f"timing pages, {args.rounds} rounds each")
            timed = await time_pages(
                console, stack.keys["API_KEY"], pages(ids, big, args), args.rounds
            )
        finally:
            stack.stop()
    return {
        "bench": "console",
        "measure": "wall time of each GET from this process to the console on 127.0.0.1 "
        "(services and console as separate processes on the same machine); rounds of "
        f"{', '.join(AMC_BACKED)} are {AMC_GAP_S * 1000:.0f} ms apart (the poller's AMC rate "
        "limit would otherwise queue them)",
        "seeded": {
            "schedules": args.schedules + 1,
            "runs_of_timed_schedule": args.runs,
            "collections": args.collections,
            "weeks_per_collection": args.weeks,
            "executions": args.executions + 1,
            "instances": args.instances + 1,
        },
        "rounds": args.rounds,
        "limit_ms": LIMIT_MS,
        "over_limit_p95": [name for name, r in timed.items() if r["p95_ms"] > LIMIT_MS],
        "pages": timed,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000, help="runs of the timed schedule")
    parser.add_argument("--collections", type=int, default=100)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))


if __name__ == "__main__":
    cli()
