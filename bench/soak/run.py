"""One soak from start to verdict: bring the stack up, drive the workload through the
faults, let it settle, check the invariants, tear everything down."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import shutil
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from amclocal.broker import LocalBroker
from amclocal.pgcluster import PostgresCluster
from amclocal.ports import free_ports
from amclocal.postgres import create_database
from amclocal.simulator import RouteKind, SimControl
from amclocal.stack import SERVICE_NAMES, ServiceStack, new_keys
from bench.soak import workload as wl
from bench.soak.config import Secrets, SoakConfig
from bench.soak.faults import FaultLog, Injector
from bench.soak.invariants import Checker, dead_letters, unfinished
from bench.soak.leaks import AccessTokenSampler, scan_logs
from bench.soak.logs import level_counts
from shared.contract import ExecutionRequested
from shared.topics_admin import contract_topics

log = logging.getLogger("soak")

# Leases short enough that a crash costs seconds (the defaults are 90 s and 120 s); polls,
# token refreshes and retries quick enough that a 10-minute soak sees many of each.
SERVICE_ENV = {
    "POLLER_LEASE_S": "10",
    "TOKEN_CLAIM_LEASE_S": "10",
    "POLLER_POLL_INTERVALS_S": "[2.0, 3.0, 5.0]",
    "TOKEN_REFRESH_INTERVAL_S": "20",
    "TOKEN_REFRESH_BUFFER_S": "480",
    "COLLECTOR_RETRY_BACKOFF_S": "5",
    "OTEL_TRACES_EXPORTER": "none",
    # A soak creates far more than AMC's 30 executions a day per instance.
    "AMC_SIM_DAILY_EXECUTION_CAP": "0",
    "POLLER_DAILY_EXECUTIONS_PER_INSTANCE": "0",
}


async def soak(cfg: SoakConfig) -> dict[str, Any]:
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="amc-soak-"))
    (work / "logs").mkdir()
    rng = random.Random(cfg.seed)
    keep = cfg.keep
    result: dict[str, Any] = {"benchmark": "soak", "workload": cfg.workload()}
    try:
        keep = await _soak(cfg, work, rng, result)
    except BaseException:
        keep = True
        log.warning("the soak did not finish; its logs are in %s", work)
        raise
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    return result


async def _soak(cfg: SoakConfig, work: Path, rng: random.Random, result: dict[str, Any]) -> bool:
    """Fills `result`; returns whether to keep the work directory."""
    logs = work / "logs"
    keep = cfg.keep
    async with AsyncExitStack() as exits:
        broker = LocalBroker(log_path=work / "broker.log")
        bootstrap = broker.start()
        exits.callback(broker.stop)
        # Its own directory, so that the `postgres` user (when we are root) can reach it.
        pg = PostgresCluster(Path(tempfile.mkdtemp(prefix="amc-soak-pg-")))
        admin = await asyncio.to_thread(pg.start)
        exits.callback(lambda: pg.stop() if keep else pg.destroy())
        dsn = await create_database(admin, "amc")
        result["setup"] = {
            "postgres": {"bindir": str(pg.bindir), "runs_as": pg.runs_as, "port": pg.port},
            "broker": bootstrap,
            "service_env": SERVICE_ENV,
        }

        keys = new_keys()
        client_secret = secrets.token_urlsafe(24)
        found = Secrets()
        found.add("lwa_client_secret", client_secret)
        found.add("api_key", keys["API_KEY"])
        found.add("encryption_key", keys["EVENT_ENCRYPTION_KEYS"], keys["TOKEN_ENCRYPTION_KEYS"])
        *ports, simulator_port = free_ports(len(SERVICE_NAMES) + 1)
        stack = ServiceStack(
            bootstrap=bootstrap,
            database_url=dsn,
            log_dir=logs,
            keys=keys,
            ports=dict(zip(SERVICE_NAMES, ports, strict=True)),
            simulator_port=simulator_port,
            replicas=2,
            lwa_client_secret=client_secret,
            extra_env=SERVICE_ENV,
        )
        exits.callback(stack.stop)
        log.info("starting the stack (2 replicas per service) in %s", work)
        await stack.start()
        http = await exits.enter_async_context(httpx.AsyncClient())
        sim = SimControl(stack.simulator_url, http)
        api = wl.Api(stack, http)

        workload = wl.Workload()
        workload.accounts = await wl.provision(cfg, sim, api, found, rng)
        workload.schedules = await wl.create_schedules(cfg, api, workload.accounts)
        workload.collections = await wl.create_collections(cfg, api, workload.accounts)
        workload.external = wl.external_requests(cfg, workload.accounts)
        log.info(
            "workload: %d schedules, %d collections, %d external requests",
            len(workload.schedules),
            len(workload.collections),
            len(workload.external),
        )

        sampler = AccessTokenSampler(dsn, keys, found)
        stop_sampling = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop_sampling))
        faults = FaultLog()
        injector = Injector(cfg, stack, broker, pg, sim, faults, rng)
        result["workload"]["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        log.info("fault phase: %.0f s", cfg.phase_s)
        await asyncio.gather(
            injector.run(),
            wl.send_external(
                cfg,
                bootstrap,
                stack.topics.name(ExecutionRequested.topic),
                workload,
                rng,
                faults.started,
            ),
        )
        await wl.pause_schedules(api, workload.schedules)

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
        exits.push_async_callback(pool.close)
        result["settle"] = await settle(pool, workload, cfg.settle_minutes * 60)
        stop_sampling.set()
        await sampling
        await sampler.sample()

        checker = Checker(
            pool, workload, await sim.executions(), await sim.requests(kind=RouteKind.CREATE)
        )
        report = await checker.run()
        dlqs = [t for t in contract_topics(stack.topics) if t.endswith(".dlq")]
        await dead_letters(bootstrap, dlqs, report)
        service_logs = [logs / f"{name}.log" for name in stack.service_processes]
        secrets_found = scan_logs(service_logs, found)
        result["logs"] = level_counts(service_logs)
        for leak in secrets_found["leaks"]:
            report.violation("no secret in any log", "secret in a log line", **leak)
        if not result["settle"]["settled"]:
            report.violation(
                "settles", "work still in flight after the settle time", **result["settle"]["left"]
            )
        stats = await sim.stats()
        report.counts["amc"]["throttled_429"] = sum(
            s.throttled for i, s in stats.instances.items() if i in workload.instance_ids
        )
        # What the token revocations cost: AMC's refusals, and LWA calls (proactive and on
        # demand together), to read beside the faults' timeline.
        records = await sim.requests()
        report.counts["amc"]["refused_401"] = sum(
            1 for r in records if r.status == 401 and r.instance_id in workload.instance_ids
        )
        report.counts["lwa_token_calls"] = sum(1 for r in records if r.kind is RouteKind.TOKEN)
        report.counts["secrets"] = {
            **{k: v for k, v in secrets_found.items() if k != "leaks"},
            "access_token_samples": sampler.samples,
            "leaks": len(secrets_found["leaks"]),
        }
        result["faults"] = {
            "counts": faults.counts(),
            "unexpected_exits": injector.unexpected_exits,
            "timeline": faults.entries,
        }
        result["invariants"] = report.counts
        result["violations"] = report.violations
        keep = keep or bool(report.violations)
        result["work_dir"] = str(work) if keep else None
    return keep


async def settle(
    pool: asyncpg.Pool[Any], workload: wl.Workload, timeout_s: float
) -> dict[str, Any]:
    """Wait (bounded) until nothing is in flight: runs, executions, collections, outboxes."""
    began = time.monotonic()
    left: dict[str, int] = {}
    while time.monotonic() - began < timeout_s:
        left = await unfinished(pool, workload)
        if not any(left.values()):
            break
        log.info("settling: %s", {k: v for k, v in left.items() if v})
        await asyncio.sleep(5.0)
    return {
        "settled": not any(left.values()),
        "seconds": round(time.monotonic() - began, 1),
        "left": {k: v for k, v in left.items() if v},
    }
