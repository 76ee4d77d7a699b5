"""Token service: one proactive cycle over N tokens that all expire within the buffer.

The LWA simulator runs as its own process with a fixed latency on the token endpoint, so
the CPU seconds measured here are the token service's own (refresh loop, encryption,
database writes, outbox relay to Kafka). Prints one JSON object.

Two baselines come from the same run: the bound, N / concurrency x latency (LWA's own pace,
what no client can beat), and a bare pass just before the cycle: the same N refreshes,
`concurrency` at once, through the service's LWA client and nothing else (no database, no
encryption, no events): what this machine and the simulator allow at that moment.

    python -m bench.token                       # 10,000 tokens, 50 ms LWA latency
    python -m bench.token --tokens 200          # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from amclocal.ports import free_port
from amclocal.simulator import FaultRule, RouteKind, SimControl
from bench.infra import Infra, event_loop_name, infra
from bench.infra import run as run_on_service_loop
from services.token.runtime import TokenRuntime
from services.token.settings import TokenSettings
from shared.config import KafkaSettings
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics

CLIENT_ID = "amzn1.application-oa2-client.bench"
CLIENT_SECRET = "bench-client-secret"
ROOT = Path(__file__).resolve().parents[2]


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drained(pool: Any) -> None:
    """Until the relay has published every token.refreshed."""
    pending = True
    while pending:
        pending = bool(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        await asyncio.sleep(0.02 if pending else 0)


def spawn_simulator(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'deploy' / 'local'}:{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "amclocal.simulator", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = spawn_simulator(port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(1200):  # a loaded machine takes its time to import the simulator
            try:
                if (await http.get(f"{url}/_sim/healthz")).is_success:
                    return proc, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("the simulator did not start")


async def register_users(sim: SimControl, n: int) -> list[tuple[str, str]]:
    users = [(f"bench-user-{i:06d}", f"Atzr|bench-{i:06d}-{os.urandom(8).hex()}") for i in range(n)]
    gate = asyncio.Semaphore(16)

    async def one(user: tuple[str, str]) -> None:
        async with gate:
            await sim.register_user(*user)

    await asyncio.gather(*(one(u) for u in users))
    return users


async def bare_refreshes(runtime: TokenRuntime, users: list[tuple[str, str]], n: int) -> float:
    """Wall seconds of the same refreshes with nothing around the calls, `n` at once."""
    tokens = iter([t for _, t in users])

    async def caller() -> None:
        for token in tokens:
            await runtime.lwa.refresh(token)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(n)))
    return time.perf_counter() - started


async def run(
    env: Infra, n: int, latency_ms: int, concurrency: int, profile: str | None = None
) -> dict[str, Any]:
    proc, sim_url = await start_simulator()
    try:
        async with SimControl(sim_url) as sim:
            await sim.register_client(CLIENT_ID, CLIENT_SECRET)
            users = await register_users(sim, n)
            await sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=latency_ms))
            settings = TokenSettings(
                database_url=env.database_url,
                db_schema=f"{env.uid}_token",
                kafka=KafkaSettings(bootstrap_servers=env.bootstrap, topic_prefix=f"{env.uid}."),
                lwa_base_url=sim_url,
                lwa_client_id=CLIENT_ID,
                lwa_client_secret=CLIENT_SECRET,
                encryption_keys=KeyRing.generate_key(),
                event_encryption_keys=KeyRing.generate_key(),
                refresh_initial_delay_s=3600.0,  # the benchmark runs the cycle itself
                concurrency=concurrency,
                db_pool_max=10,
                outbox_poll_interval_s=0.1,
            )
            service = runtime = TokenRuntime(settings)
            await ensure_topics(env.bootstrap, contract_topics(runtime.topics))
            await runtime.start()
            try:
                ring, fp = service.vault.storage, service.vault.current_fp
                expires = datetime.now(UTC) + timedelta(minutes=5)
                async with runtime.pool.acquire() as conn:
                    await conn.executemany(
                        """INSERT INTO tokens (user_id, refresh_token_enc, access_token_enc,
                                               expires_at, key_fp, last_refreshed_at)
                           VALUES ($1, $2, $3, $4, $5, now() - interval '55 minutes')""",
                        [
                            (
                                u,
                                ring.encrypt(t),
                                ring.encrypt("Atza|old"),
                                expires,
                                fp,
                            )
                            for u, t in users
                        ],
                    )
                bare_cpu_before = time.process_time()
                bare_wall = await bare_refreshes(runtime, users, concurrency)
                bare_cpu = time.process_time() - bare_cpu_before
                calls_before = len(await sim.requests(kind=RouteKind.TOKEN))
                sim_cpu_before = process_cpu_seconds(proc.pid)
                cpu_before = time.process_time()
                started = time.perf_counter()
                profiler = cProfile.Profile() if profile else None
                if profiler:
                    profiler.enable()
                result = await service.refresher.run_cycle()
                if profiler and profile:
                    profiler.disable()
                    profiler.dump_stats(profile)
                refresh_wall = time.perf_counter() - started
                refresh_cpu = time.process_time() - cpu_before
                await drained(runtime.pool)
                published_wall = time.perf_counter() - started
                total_cpu = time.process_time() - cpu_before
                sim_cpu = process_cpu_seconds(proc.pid) - sim_cpu_before
                lwa_calls = len(await sim.requests(kind=RouteKind.TOKEN)) - calls_before
                fresh = await runtime.pool.fetchval(
                    "SELECT count(*) FROM tokens WHERE expires_at > now() + interval '30 minutes'"
                )
                events = await runtime.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE topic = $1",
                    runtime.topics.name("token.refreshed"),
                )
            finally:
                await runtime.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bound = n / concurrency * latency_ms / 1000
    return {
        "benchmark": "token.refresh_cycle",
        "event_loop": event_loop_name(),
        "tokens": n,
        "lwa_latency_ms": latency_ms,
        "concurrency": concurrency,
        "wall_seconds_refresh_all": round(refresh_wall, 3),
        "wall_seconds_until_all_published": round(published_wall, 3),
        "bound_seconds": round(bound, 3),
        "ratio_to_bound": round(published_wall / bound, 3),
        "bare_lwa_seconds": round(bare_wall, 3),
        "ratio_to_bare_lwa": round(published_wall / bare_wall, 3),
        "bare_lwa_cpu_ms_per_call": round(bare_cpu / n * 1000, 3),
        "cpu_ms_per_token": round(total_cpu / n * 1000, 3),
        "lwa_calls": lwa_calls,
        "cpu_seconds": round(total_cpu, 3),
        "cpu_seconds_during_refresh": round(refresh_cpu, 3),
        "simulator_cpu_seconds": round(sim_cpu, 3),
        "refreshed": result.refreshed,
        "failed": result.failed + result.reauth_required + result.lost_claims,
        "tokens_fresh_after": fresh,
        "token_refreshed_events": events,
        "tokens_per_second": round(n / refresh_wall, 1),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.token", description=__doc__)
    parser.add_argument("--tokens", type=int, default=10_000, help="tokens due (default 10000)")
    parser.add_argument("--latency-ms", type=int, default=50, help="LWA latency (default 50)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=TokenSettings.model_fields["concurrency"].default,
        help="LWA calls in flight (TOKEN_CONCURRENCY; default %(default)s)",
    )
    parser.add_argument("--profile", help="write a cProfile of the cycle to this file")
    args = parser.parse_args()

    async def go() -> dict[str, Any]:
        async with infra() as env:
            return await run(env, args.tokens, args.latency_ms, args.concurrency, args.profile)

    # FastStream logs to stdout; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        result = run_on_service_loop(go())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
