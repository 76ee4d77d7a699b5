"""Reading and writing topics directly in tests, without consumer groups (no join delay)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int

    def json(self) -> Any:
        return json.loads(self.value)


class TopicReader:
    """Reads every partition of some topics from the beginning, by manual assignment."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self.records: list[Record] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        parts = []
        for topic in self._topics:
            for _ in range(50):
                found = consumer.partitions_for_topic(topic)
                if found:
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"topic {topic} does not exist")
            parts += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
        for tp, messages in batches.items():
            self.records.extend(
                Record(
                    tp.topic,
                    m.key,
                    m.value,
                    {k: v.decode() for k, v in m.headers},
                    tp.partition,
                    m.offset,
                )
                for m in messages
            )

    async def wait_for(
        self,
        predicate: Callable[[list[Record]], bool],
        timeout_s: float = 30.0,
        what: str = "records",
    ) -> list[Record]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self.records):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; have {len(self.records)} record(s)"
                )
            await self.poll()
        return self.records

    async def wait_count(self, n: int, timeout_s: float = 30.0) -> list[Record]:
        return await self.wait_for(lambda r: len(r) >= n, timeout_s, f"{n} records")

    def of(self, topic: str) -> list[Record]:
        return [r for r in self.records if r.topic == topic]


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    key: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                topic,
                value,
                key=key,
                headers=[(k, v.encode()) for k, v in (headers or {}).items()],
            )
    finally:
        await producer.stop()
