"""Collector benchmark: one long collection against a fake poller; prints one JSON object.

    python -m bench.collector [--weeks 520] [--limit 10] [--duration 1.0]

The collector runtime runs in this process on a local Tansu broker and a fresh PostgreSQL
database (or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set); the fake poller (the test
suite's) answers each week.requested with execution.submitted at once and
execution.completed after `duration` seconds. Reported: wall time from creation to
COMPLETED against the ideal (weeks / limit x duration), events the collector consumed per
second, and the peak of executions in flight as the poller saw them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from amclocal.broker import LocalBroker
from amclocal.postgres import create_database, drop_database, local_postgres
from bench.collector.hops import Timeline, install
from bench.infra import event_loop_name
from bench.infra import run as run_on_service_loop
from services.collector.logic import WeekStartDay
from services.collector.operations import NewCollection
from services.collector.runtime import CollectorRuntime
from services.collector.settings import CollectorSettings
from shared.config import KafkaSettings
from shared.contract import ExecutionCompleted, ExecutionSubmitted, Origin, OriginKind
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.collector.fake_poller import FakePoller


async def bench(weeks: int, limit: int, duration_s: float, hops: bool) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        timeline = Timeline()
        if hops:
            stack.callback(install(timeline))
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = LocalBroker()
            broker.start()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap
        dsn = os.environ.get("DATABASE_URL")
        if not dsn:
            admin = await stack.enter_async_context(local_postgres())
            name = f"amc_bench_{uuid.uuid4().hex[:8]}"
            dsn = await create_database(admin, name)
            stack.push_async_callback(drop_database, admin, name)
        uid = f"b{uuid.uuid4().hex[:8]}"
        settings = CollectorSettings(
            database_url=dsn,
            db_schema=f"{uid}_collector",
            kafka=KafkaSettings(
                bootstrap_servers=bootstrap,
                topic_prefix=f"{uid}.",
                session_timeout_ms=3000,
                heartbeat_interval_ms=500,
                # The local broker holds a fetch for much of its wait even when a record
                # arrives (Kafka answers at once): a short wait stands in for Kafka's answer.
                # 5 ms was no better here (more fetches compete for the CPU).
                fetch_max_wait_ms=10,
            ),
            max_range_days=weeks * 7 + 7,
            data_lag_days=2,
            outbox_poll_interval_s=0.5,
        )
        runtime = CollectorRuntime(settings)
        await ensure_topics(bootstrap, contract_topics(runtime.topics))
        await runtime.start()
        stack.push_async_callback(runtime.stop)
        poller = await stack.enter_async_context(
            FakePoller(bootstrap, runtime.topics, duration_s=duration_s)
        )
        await _warm_up(runtime, bootstrap)
        # The last whole Monday-to-Sunday week that AMC's data lag allows, and `weeks` before.
        latest = datetime.now(UTC).date() - timedelta(days=settings.data_lag_days)
        end = latest - timedelta(days=(latest.weekday() + 1) % 7)
        start = end - timedelta(days=7 * weeks - 1)

        started = time.perf_counter()
        started_wall = time.time()
        cid = await runtime.operations.create(
            NewCollection(
                run={
                    "user_id": "bench-user",
                    "instance_id": "bench-instance",
                    "advertiser_id": "bench-adv",
                    "marketplace_id": "ATVPDKIKX0DER",
                    "workflow_id": "bench-wf",
                    "output_format": "CSV",
                    "parameters": {},
                },
                start_date=start,
                end_date=end,
                week_start_day=WeekStartDay.MONDAY,
                time_zone="UTC",
                max_in_flight=limit,
                max_attempts=3,
            )
        )
        peak_db = await _wait_completed(runtime.pool, cid, poller, weeks)
        wall = time.perf_counter() - started
        ended_wall = time.time()

        consumed = _consumed(runtime) - 1  # without the warm-up event
        ideal = weeks / limit * duration_s
        return {
            "benchmark": "collector",
            "event_loop": event_loop_name(),
            "weeks": weeks,
            "max_weeks_in_flight": limit,
            "execution_duration_s": duration_s,
            "wall_time_s": round(wall, 2),
            "ideal_time_s": round(ideal, 2),
            "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
            "overhead_per_wave_s": round((wall - ideal) / (weeks / limit), 3),
            "events_consumed": int(consumed),
            "events_per_s": round(consumed / wall, 1),
            "handler_ms_mean": round(1000 * _handler_mean_s(runtime), 2),
            "executions": len(poller.executions),
            "duplicate_requests": poller.duplicate_requests,
            "request_delivery_ms_mean": round(
                1000 * sum(poller.request_delays) / max(1, len(poller.request_delays)), 1
            ),
            "peak_in_flight_poller": poller.peak_in_flight,
            "peak_in_flight_db_sampled": peak_db,
            **({"hops": timeline.report(started_wall, ended_wall)} if hops else {}),
        }
    raise AssertionError("unreachable")


def _consumed(runtime: CollectorRuntime) -> float:
    return sum(
        runtime.registry.get_sample_value(
            "amc_events_consumed_total",
            {"topic": runtime.topics.name(t.topic), "outcome": "processed"},
        )
        or 0.0
        for t in (ExecutionSubmitted, ExecutionCompleted)
    )


def _handler_mean_s(runtime: CollectorRuntime) -> float:
    """Mean time the collector spent on one event (its transaction included)."""
    total = count = 0.0
    for t in (ExecutionSubmitted, ExecutionCompleted):
        labels = {"topic": runtime.topics.name(t.topic)}
        total += runtime.registry.get_sample_value("amc_handler_seconds_sum", labels) or 0.0
        count += runtime.registry.get_sample_value("amc_handler_seconds_count", labels) or 0.0
    return total / count if count else 0.0


async def _warm_up(runtime: CollectorRuntime, bootstrap: str) -> None:
    """Wait until the consumer group has joined (an event of another origin is consumed), so
    the measurement is of a running service rather than of the broker's slow group join."""
    foreign = ExecutionSubmitted(
        execution_id=uuid.uuid4(),
        amc_execution_id="warm-up",
        instance_id="warm-up",
        user_id="warm-up",
        origin=Origin(kind=OriginKind.EXTERNAL, id="warm-up"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            runtime.topics.name(foreign.topic), foreign.to_bytes(), key=foreign.key()
        )
    finally:
        await producer.stop()
    while _consumed(runtime) < 1:  # noqa: ASYNC110 - a metric has nothing to wait on
        await asyncio.sleep(0.05)


async def _wait_completed(
    pool: asyncpg.Pool[Any], cid: uuid.UUID, poller: FakePoller, weeks: int
) -> int:
    """Wait for COMPLETED; returns the highest in-flight count seen by sampling every 50 ms.
    One statement a sample (the run's own load); once the poller has completed the last
    week's execution, samples come every 2 ms, so the end is seen when it happens, not up to a
    sampling interval later."""
    peak = 0
    async with pool.acquire() as conn:
        while True:
            row = await conn.fetchrow(
                """SELECT c.status, (SELECT count(*) FROM collection_weeks w
                                     WHERE w.collection_id = c.id
                                       AND w.status IN ('REQUESTED', 'RUNNING')) AS in_flight
                   FROM collections c WHERE c.id = $1""",
                cid,
            )
            assert row is not None
            in_flight: int = row["in_flight"]
            peak = max(peak, in_flight)
            if row["status"] == "COMPLETED":
                return peak
            if row["status"] not in ("QUEUED", "ACTIVE"):
                raise RuntimeError(f"collection ended {row['status']}")
            done = poller.completed() >= weeks
            await asyncio.sleep(0.002 if done else 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--weeks", type=int, default=520)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per execution")
    parser.add_argument(
        "--hops", action="store_true", help="time each hop of the chain (bench/collector/hops.py)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    print(json.dumps(run_on_service_loop(bench(args.weeks, args.limit, args.duration, args.hops))))


if __name__ == "__main__":
    main()
