"""Outbox pipeline throughput beside its two ceilings, in one run.

pipeline: enqueue N events (transactions of --tx-size, --writers of them at once) -> relay
          (batches: send all, await the acknowledgements, mark sent) -> Kafka -> idempotent
          consumer (one transaction and one offset commit per fetched batch) -> handled.
kafka:    bare aiokafka produce of N records, then consume them (no group).
postgres: N sequential one-row transactions: the pipeline's ceiling with one transaction per
          event.

The goal (issue 24) is a pipeline of at least GOAL_RATIO_TO_KAFKA of bare Kafka, in one run:
the medians of `--rounds` rounds, each bare Kafka then the pipeline (events per second are
N over the median seconds).

    python -m bench.outbox --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.infra import Infra, event_loop_name, infra
from bench.infra import run as run_on_service_loop
from shared.config import KafkaSettings, ServiceSettings
from shared.contract import ExecutionRequested
from shared.db import create_pool
from shared.service import freeze_startup_heap
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.probe import probe_runtime, request

GOAL_RATIO_TO_KAFKA = 0.30


async def pipeline(
    env: Infra, n: int, tx_size: int, writers: int, name: str
) -> tuple[float, float]:
    settings = ServiceSettings(
        service_name=f"benchprobe{name}",
        database_url=env.database_url,
        db_schema=f"{env.uid}_{name}",
        outbox_poll_interval_s=0.1,
        kafka=KafkaSettings(
            bootstrap_servers=env.bootstrap,
            topic_prefix=f"{env.uid}.{name}.",
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
            # The local broker holds a fetch for much of its wait even when a record arrives
            # (Kafka answers at once): a short wait stands in for Kafka's answer, as in
            # bench.collector.
            fetch_max_wait_ms=20,
        ),
    )
    runtime = probe_runtime(settings)
    await ensure_topics(env.bootstrap, contract_topics(runtime.topics))
    await runtime.start()
    freeze_startup_heap()  # as a service's process does once it is built (shared/service.py)
    try:
        # Let the consumer join its group before the clock starts.
        await asyncio.sleep(4)
        events = [request(f"key-{i % 50}", seq=i) for i in range(n)]
        batches = [events[i : i + tx_size] for i in range(0, n, tx_size)]

        async def write(mine: list[list[ExecutionRequested]]) -> None:
            for batch in mine:
                async with runtime.pool.acquire() as conn, conn.transaction():
                    await runtime.outbox.enqueue(conn, *batch)

        started = time.perf_counter()
        # Several writers commit at once, as a service's concurrent handlers do: one alone is
        # bound by its own commits' round trips, and the pipeline would wait on it.
        await asyncio.gather(*(write(batches[w::writers]) for w in range(writers)))
        relayed = 0.0
        while await runtime.pool.fetchval("SELECT count(*) FROM seen") < n:
            if not relayed and not await runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            ):
                relayed = time.perf_counter() - started
            await asyncio.sleep(0.05)
        return time.perf_counter() - started, relayed or time.perf_counter() - started
    finally:
        await runtime.stop()


async def bare_kafka(env: Infra, n: int, name: str) -> float:
    topic = f"{env.uid}.{name}"
    await ensure_topics(env.bootstrap, [topic])
    payload = request("bare").to_bytes()
    producer = AIOKafkaProducer(bootstrap_servers=env.bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=env.bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or [0]]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        started = time.perf_counter()
        sends = [
            await producer.send(topic, payload, key=f"key-{i % 50}".encode()) for i in range(n)
        ]
        await asyncio.gather(*sends)
        got = 0
        while got < n:
            batch = await consumer.getmany(timeout_ms=200)
            got += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def bare_postgres(env: Infra, n: int) -> float:
    schema = f"{env.uid}_bare"
    conn = await asyncpg.connect(env.database_url)
    await conn.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".t (id int, body text)')
    await conn.close()
    pool: asyncpg.Pool[Any] = await create_pool(env.database_url, schema)
    try:
        started = time.perf_counter()
        for i in range(n):
            async with pool.acquire() as c, c.transaction():
                await c.execute("INSERT INTO t VALUES ($1, $2)", i, "x")
        return time.perf_counter() - started
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--tx-size", type=int, default=10, help="events per enqueue transaction")
    parser.add_argument(
        "--writers", type=int, default=4, help="enqueue transactions in flight at once"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="bare Kafka then the pipeline, this many times; the medians are compared",
    )
    args = parser.parse_args()
    kafka_runs: list[float] = []
    pipeline_runs: list[float] = []
    relay_runs: list[float] = []
    async with infra() as env:
        # Alternating rounds: a noisy moment of the shared machine, or the state one
        # measurement leaves behind (the broker's log, the database's dirty pages), weighs on
        # both sides rather than on one.
        for round_ in range(args.rounds):
            kafka_runs.append(await bare_kafka(env, args.events, f"bare{round_}"))
            pipe_s, relay_s = await pipeline(
                env, args.events, args.tx_size, args.writers, f"pipeline{round_}"
            )
            pipeline_runs.append(pipe_s)
            relay_runs.append(relay_s)
            print(
                f"round {round_ + 1}/{args.rounds}: bare Kafka {kafka_runs[-1]:.3f} s, "
                f"pipeline {pipe_s:.3f} s",
                file=sys.stderr,
            )
        pg_s = await bare_postgres(env, args.events)
    kafka_s = statistics.median(kafka_runs)
    pipe_s = statistics.median(pipeline_runs)
    relay_s = statistics.median(relay_runs)
    rate = {
        "pipeline": args.events / pipe_s,
        "relay_only": args.events / relay_s,
        "bare_kafka": args.events / kafka_s,
        "bare_postgres_tx": args.events / pg_s,
    }
    print(
        json.dumps(
            {
                "benchmark": "outbox",
                "event_loop": event_loop_name(),
                "events": args.events,
                "enqueue": {"events_per_transaction": args.tx_size, "writers": args.writers},
                "rounds": args.rounds,
                "events_per_second": {k: round(v, 1) for k, v in rate.items()},
                "seconds": {
                    "pipeline": round(pipe_s, 3),
                    "relay_only": round(relay_s, 3),
                    "bare_kafka": round(kafka_s, 3),
                    "bare_postgres_tx": round(pg_s, 3),
                },
                "seconds_per_round": {
                    "pipeline": [round(x, 3) for x in pipeline_runs],
                    "bare_kafka": [round(x, 3) for x in kafka_runs],
                },
                "ratio_pipeline_to_bare_kafka": round(rate["pipeline"] / rate["bare_kafka"], 3),
                "goal_ratio_to_bare_kafka": GOAL_RATIO_TO_KAFKA,
                "ratio_pipeline_to_bare_postgres_tx": round(
                    rate["pipeline"] / rate["bare_postgres_tx"], 3
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run_on_service_loop(main())
