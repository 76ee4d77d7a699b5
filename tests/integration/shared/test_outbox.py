"""The outbox relay delivers every event, in order per key, across crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from shared.contract import ExecutionRequested, Topics
from shared.db import apply_migrations, create_pool
from shared.outbox import Outbox, OutboxRelay, OutboxRow
from shared.topics_admin import ensure_topics
from tests.integration.probe import MIGRATIONS, request
from tests.support.kafka import Record, TopicReader

ROOT = Path(__file__).resolve().parents[3]
KEYS = 20


@pytest.fixture
async def pool(uid: str, database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    await apply_migrations(database_url, uid, MIGRATIONS)
    pool = await create_pool(database_url, uid)
    yield pool
    await pool.close()


async def enqueue(pool: asyncpg.Pool[Any], outbox: Outbox, n: int) -> list[ExecutionRequested]:
    events = [request(f"key-{i % KEYS}", seq=i) for i in range(n)]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, *events)
    return events


def assert_complete_and_ordered(records: list[Record], events: list[ExecutionRequested]) -> int:
    """Every event arrived; per key, first arrivals follow enqueue order. Returns duplicates."""
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for record in records:
        body = record.json()
        if body["event_id"] in seen:
            continue
        seen.add(body["event_id"])
        firsts[body["request_id"]].append(body["run"]["parameters"]["seq"])
    assert seen == {str(e.event_id) for e in events}
    for key, seqs in firsts.items():
        assert seqs == sorted(seqs), f"{key} arrived out of order"
    return len(records) - len(seen)


async def test_relay_publishes_everything_in_order_despite_failing_mid_batch(
    uid: str, pool: asyncpg.Pool[Any], kafka_bootstrap: str
) -> None:
    topics = Topics(f"{uid}.")
    topic = topics.name(ExecutionRequested.topic)
    await ensure_topics(kafka_bootstrap, [topic], partitions=4)
    events = await enqueue(pool, Outbox(uid, topics), 1200)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    budget = {"left": 250}

    async def flaky(rows: Sequence[OutboxRow]) -> None:
        acks = []
        for row in rows:
            budget["left"] -= 1
            if budget["left"] == 0:
                raise ConnectionError("broker went away mid-batch")
            acks.append(await producer.send(row.topic, row.payload, key=row.key))
        await asyncio.gather(*acks)

    relay = OutboxRelay(pool, uid, flaky, batch_size=100)

    async def relay_until_done() -> None:
        while await relay.relay_once():
            pass

    with pytest.raises(ConnectionError):
        await relay_until_done()
    budget["left"] = 10**9
    await relay_until_done()
    await producer.stop()

    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    async with TopicReader(kafka_bootstrap, topic) as reader:
        records = await reader.wait_count(len(events) + 49)
    duplicates = assert_complete_and_ordered(records, events)
    assert duplicates == 49  # the failed batch's records sent before the failure


async def test_relay_marks_nothing_sent_when_an_acknowledgement_fails_mid_batch(
    uid: str, pool: asyncpg.Pool[Any], kafka_bootstrap: str
) -> None:
    topics = Topics(f"{uid}.")
    topic = topics.name(ExecutionRequested.topic)
    await ensure_topics(kafka_bootstrap, [topic], partitions=4)
    events = await enqueue(pool, Outbox(uid, topics), 300)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    calls = {"n": 0, "fail_at": 150}

    async def refused_once(rows: Sequence[OutboxRow]) -> None:
        # Every record reaches the broker, but one acknowledgement is lost (a timeout).
        acks = [await producer.send(row.topic, row.payload, key=row.key) for row in rows]
        await asyncio.gather(*acks)
        calls["n"] += len(rows)
        if calls["n"] >= calls["fail_at"] > calls["n"] - len(rows):
            raise KafkaTimeoutError("no acknowledgement")

    relay = OutboxRelay(pool, uid, refused_once, batch_size=300)
    with pytest.raises(KafkaTimeoutError):
        await relay.relay_once()
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 0

    assert await relay.relay_once() == len(events)
    await producer.stop()
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    async with TopicReader(kafka_bootstrap, topic) as reader:
        records = await reader.wait_count(2 * len(events))
    # The failed batch went out whole, and again: every event twice, consumers de-duplicate.
    assert assert_complete_and_ordered(records, events) == len(events)


@pytest.mark.slow
async def test_relay_killed_with_sigkill_loses_nothing(
    uid: str, pool: asyncpg.Pool[Any], database_url: str, kafka_bootstrap: str
) -> None:
    topics = Topics(f"{uid}.")
    topic = topics.name(ExecutionRequested.topic)
    await ensure_topics(kafka_bootstrap, [topic], partitions=4)
    events = await enqueue(pool, Outbox(uid, topics), 1500)
    args = [
        sys.executable,
        "-m",
        "tests.integration.relay_process",
        database_url,
        uid,
        kafka_bootstrap,
        "200",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}"}

    victim = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert victim.stdout is not None
    assert (await victim.stdout.readline()).strip() == b"ready"
    for _ in range(200):  # kill once the first batch is marked and the next is in flight
        await asyncio.sleep(0.05)
        sent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
        if sent >= 200:
            break
    victim.send_signal(signal.SIGKILL)
    await victim.wait()
    sent_at_kill = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
    assert 0 < sent_at_kill < len(events), "the kill must land mid-run"

    survivor = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await survivor.communicate()
    assert survivor.returncode == 0
    assert b"drained" in out

    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    async with TopicReader(kafka_bootstrap, topic) as reader:
        await reader.wait_count(len(events))
        await asyncio.sleep(0.5)
        await reader.poll()
    assert_complete_and_ordered(reader.records, events)


async def test_prune_keeps_what_a_redelivery_needs_and_deletes_the_rest(
    pool: asyncpg.Pool[Any], uid: str
) -> None:
    """Sent rows past the outbox retention and handled ids past theirs go; unsent rows and
    recent ids stay, however old."""

    async def no_publish(rows: Sequence[OutboxRow]) -> None:
        raise AssertionError("prune publishes nothing")

    relay = OutboxRelay(pool, uid, no_publish, retention=timedelta(hours=1))
    events = await enqueue(pool, Outbox(uid, Topics(f"{uid}.")), 4)
    ids = [e.event_id for e in events]
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE outbox SET sent_at = now() - interval '2 hours',
                                 created_at = now() - interval '3 hours'
               WHERE event_id = ANY($1::uuid[])""",
            ids[:2],
        )
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE event_id = $1", ids[2])
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '30 days' WHERE event_id = $1", ids[3]
        )
        await conn.executemany(
            "INSERT INTO processed_events (event_id, topic, processed_at) VALUES ($1, 't', $2)",
            [
                (uuid4(), datetime.now(UTC) - timedelta(days=15)),
                (uuid4(), datetime.now(UTC) - timedelta(days=15)),
                (ids[0], datetime.now(UTC) - timedelta(days=13)),
            ],
        )

    assert await relay.prune() == 4

    left = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox")}
    assert left == {ids[2], ids[3]}  # sent an hour ago at most, and never sent
    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM processed_events")] == [
        ids[0]
    ]
    assert await relay.prune() == 0


async def test_relay_hands_each_row_over_with_its_stored_trace_context(
    uid: str, pool: asyncpg.Pool[Any]
) -> None:
    """The publisher continues each row's trace (tests/unit/shared/test_publisher.py): the
    relay must hand over the context stored with the row, not the one current in the relay."""
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    stored = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    async with pool.acquire() as conn, conn.transaction():
        await Outbox(uid, Topics(f"{uid}.")).enqueue(conn, request("r"), trace_contexts=[stored])
    published: list[OutboxRow] = []

    async def capture(rows: Sequence[OutboxRow]) -> None:
        published.extend(rows)

    assert await OutboxRelay(pool, uid, capture).relay_once() == 1
    [row] = published
    assert row.headers == stored
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
