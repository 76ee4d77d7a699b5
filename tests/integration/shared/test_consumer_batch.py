"""Batches applied in one transaction: poison records, redelivered batches, a kill -9 between
the database commit and the offset commit."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from amclocal.broker import LocalBroker
from amclocal.ports import free_ports
from shared.config import ServiceSettings
from shared.contract import ExecutionRequested
from shared.db import apply_migrations
from shared.runtime import ServiceRuntime
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.probe import MIGRATIONS, probe_runtime, request
from tests.integration.shared.test_consumer import consumed, wait_until
from tests.support.kafka import TopicReader, produce
from tests.support.proxy import TcpProxy
from tests.support.settings import service_settings

ROOT = Path(__file__).resolve().parents[3]


def probe_settings(uid: str, database_url: str, bootstrap: str) -> ServiceSettings:
    return service_settings(
        ServiceSettings, service="probe", uid=uid, database_url=database_url, bootstrap=bootstrap
    )


@asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def refused(request_id: str) -> ExecutionRequested:
    event = request(request_id)
    return event.model_copy(
        update={"run": event.run.model_copy(update={"workflow_id": "reject-me"})}
    )


@pytest.mark.parametrize("batch_handler", [False, True], ids=["per event", "batch handler"])
@pytest.mark.parametrize("poison_at", [(10,), (5, 15)], ids=["one poison", "two poisons"])
async def test_poison_records_of_a_batch_are_dead_lettered_and_the_rest_commit(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    poison_at: tuple[int, ...],
    batch_handler: bool,
) -> None:
    runtime = probe_runtime(
        probe_settings(uid, database_url, kafka_bootstrap), batch_handler=batch_handler
    )
    topic = runtime.topics.name(ExecutionRequested.topic)
    await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
    events = [
        refused(f"bad-{i}") if i in poison_at else request(f"good-{i}", seq=i) for i in range(25)
    ]
    # All on one partition and all there before the consumer starts: its first fetch takes
    # them as one batch.
    await produce(kafka_bootstrap, topic, [e.to_bytes() for e in events], key=b"one-partition")

    async with running(runtime) as probe:

        async def all_handled() -> bool:
            return consumed(probe, "processed") + consumed(probe, "dead_lettered") >= 25

        await wait_until(all_handled)
        good = [e for i, e in enumerate(events) if i not in poison_at]
        bad = [e for i, e in enumerate(events) if i in poison_at]
        assert consumed(probe, "processed") == len(good)
        assert consumed(probe, "dead_lettered") == len(bad)
        rows = await probe.pool.fetch("SELECT request_id FROM seen ORDER BY seq")
        assert [r["request_id"] for r in rows] == [e.request_id for e in good]
        # A dead-lettered event is not recorded as handled: were it redelivered (a crash before
        # the offsets were committed), it would be dead-lettered again, not skipped.
        recorded = await probe.pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in bad],
        )
        assert recorded == 0

    async with TopicReader(kafka_bootstrap, f"{topic}.dlq") as dlq:
        letters = [r.json() for r in await dlq.wait_count(len(bad))]
    assert [letter["offset"] for letter in letters] == list(poison_at)
    assert all("refused by the probe" in letter["reason"] for letter in letters)


async def test_a_redelivered_batch_is_skipped_as_duplicates(
    uid: str, database_url: str, kafka_bootstrap: str
) -> None:
    runtime = probe_runtime(probe_settings(uid, database_url, kafka_bootstrap))
    topic = runtime.topics.name(ExecutionRequested.topic)
    await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
    events = [request(f"req-{i}", seq=i) for i in range(40)]
    payloads = [e.to_bytes() for e in events]
    # The first five twice within the first batch, as a relay that crashed before marking
    # them sent would publish them.
    await produce(kafka_bootstrap, topic, payloads + payloads[:5], key=b"one-partition")

    async with running(runtime) as probe:

        async def first_batch_done() -> bool:
            return consumed(probe, "processed") + consumed(probe, "duplicate") >= 45

        await wait_until(first_batch_done)
        assert consumed(probe, "processed") == 40
        assert consumed(probe, "duplicate") == 5

        await produce(kafka_bootstrap, topic, payloads, key=b"one-partition")

        async def redelivery_done() -> bool:
            return consumed(probe, "duplicate") >= 45

        await wait_until(redelivery_done)
        assert consumed(probe, "processed") == 40
        assert consumed(probe, "dead_lettered") == 0
        assert await probe.pool.fetchval("SELECT count(*) FROM seen") == 40


@pytest.mark.slow
async def test_kill_between_database_commit_and_offset_commit_is_deduplicated(
    uid: str, database_url: str
) -> None:
    # A broker of its own behind a proxy: cutting the proxy stops the consumer's offset commit
    # from reaching the broker (pausing the broker would not: the request waits in its socket
    # and is committed on resume).
    proxy_port, broker_port = free_ports(2)
    broker = LocalBroker(broker_port, advertised_port=proxy_port)
    proxy = TcpProxy(proxy_port, broker_port)
    await proxy.start()
    bootstrap = broker.start()
    try:
        await _kill_between_commits(uid, database_url, bootstrap, proxy)
    finally:
        await proxy.stop()
        broker.stop()


async def _kill_between_commits(
    uid: str, database_url: str, bootstrap: str, proxy: TcpProxy
) -> None:
    settings = probe_settings(uid, database_url, bootstrap)
    survivor = probe_runtime(settings)
    topic = survivor.topics.name(ExecutionRequested.topic)
    schema = settings.schema_name
    await ensure_topics(bootstrap, contract_topics(survivor.topics))
    await apply_migrations(database_url, schema, MIGRATIONS)
    events = [request(f"req-{i}", seq=i) for i in range(30)]
    await produce(bootstrap, topic, [e.to_bytes() for e in events], key=b"one-partition")

    # The handlers' inserts wait on this lock: the batch is held inside its transaction until
    # the proxy is cut, so its offsets cannot be committed before the kill.
    locker = await asyncpg.connect(database_url)
    lock = locker.transaction()
    await lock.start()
    await locker.execute(f'LOCK TABLE "{schema}".seen IN EXCLUSIVE MODE')
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.consumer_process",
        database_url,
        uid,
        bootstrap,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'deploy' / 'local'}"},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert victim.stdout is not None
        assert (await victim.stdout.readline()).strip() == b"ready"

        async def batch_waits_on_lock() -> bool:
            waiting = await locker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
                f'"{schema}".seen',
            )
            return bool(waiting)

        await wait_until(batch_waits_on_lock)
        proxy.cut()
        await lock.rollback()

        async def batch_committed() -> bool:
            return bool(await locker.fetchval(f'SELECT count(*) FROM "{schema}".seen'))

        await wait_until(batch_committed)
        victim.kill()
        await victim.wait()
        committed = await locker.fetchval(f'SELECT count(*) FROM "{schema}".seen')
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
        await locker.close()

    # No offset reached the broker: the survivor gets every record again.
    async with running(survivor) as probe:

        async def all_redelivered() -> bool:
            return consumed(probe, "processed") + consumed(probe, "duplicate") >= len(events)

        await wait_until(all_redelivered)
        assert consumed(probe, "duplicate") == committed
        assert consumed(probe, "processed") == len(events) - committed
        assert consumed(probe, "dead_lettered") == 0
        rows = await probe.pool.fetch("SELECT request_id FROM seen ORDER BY seq")
        assert [r["request_id"] for r in rows] == [e.request_id for e in events]
