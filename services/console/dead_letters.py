"""Dead letters as the console reads and replays them, straight from the `.dlq` topics.

No management API holds dead letters (the notifier only forwards them), so the console reads
the topics itself: a consumer without a group (it commits nothing and takes no part in any
rebalance), partitions assigned by hand, each read from a fixed start up to the end offset
it saw when the read began, so a read always ends however busy the topic is. A letter's id
is its own place: `<dlq topic>/<partition>/<offset>` (the topic without the deployment's
prefix).

Replaying produces the letter's original payload to its source topic with the original key
and headers, plus `x-replay-of: <letter id>`. That is safe because the consumer records an
event's id in `processed_events` inside the savepoint its handler runs in: a handler that
failed left no trace, so the replayed record is processed as new, and a second replay of a
record that then succeeded is a duplicate by `event_id` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.console.feed import safe_fields
from shared.broker import producer_options
from shared.config import KafkaSettings
from shared.contract import ALL_EVENTS, DeadLetter, Topics
from shared.contract.topics import DLQ_SUFFIX

log = logging.getLogger(__name__)

REPLAY_HEADER = "x-replay-of"
# A read that has not reached the end offsets by then is refused rather than left hanging
# (a broker that stopped answering mid-read).
READ_DEADLINE_S = 15.0


Send = Callable[["Letter"], Awaitable[None]]


@dataclass(frozen=True, order=True)
class LetterId:
    topic: str  # the dlq topic, without the deployment's prefix
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> LetterId:
        """`schedule.due.dlq/0/12` -> LetterId; ValueError naming what is wrong."""
        topic, sep, rest = text.strip().partition("/")
        partition, sep2, offset = rest.partition("/")
        if not (sep and sep2 and topic.endswith(DLQ_SUFFIX)):
            raise ValueError(f"{text!r} is not a letter id (<topic>.dlq/<partition>/<offset>)")
        if not (partition.isdigit() and offset.isdigit()):
            raise ValueError(f"{text!r}: partition and offset must be numbers")
        return cls(topic, int(partition), int(offset))


@dataclass(frozen=True)
class Letter:
    id: LetterId
    letter: DeadLetter
    source: str  # the source topic, without the deployment's prefix

    def summary(self) -> dict[str, Any]:
        """What may be shown of the refused payload: the live feed's rule (identifiers and
        states only; `token.refreshed` carries an encrypted token, other events may carry
        workflow SQL or parameters)."""
        try:
            body = json.loads(self.letter.payload)
        except ValueError:
            return {}
        return safe_fields(body) if isinstance(body, dict) else {}

    def as_json(self) -> dict[str, Any]:
        """The API's view: never the payload or header values themselves."""
        d = self.letter
        return {
            "id": str(self.id),
            "topic": self.source,
            "partition": d.partition,
            "offset": d.offset,
            "consumer": d.consumer,
            "reason": d.reason,
            "error_type": d.error_type,
            "failed_at": d.failed_at.isoformat(),
            "key": d.key,
            "header_names": sorted(d.headers),
            "summary": self.summary(),
        }


# Every contract topic's dlq, logical names (without the prefix).
DLQ_TOPICS = tuple(f"{e.topic}{DLQ_SUFFIX}" for e in ALL_EVENTS)


def newest_first(letters: Iterable[Letter], limit: int) -> list[Letter]:
    return sorted(letters, key=lambda x: (x.letter.failed_at, x.id), reverse=True)[:limit]


def replay_headers(letter: Letter) -> list[tuple[str, bytes]]:
    """The original headers, with the letter's id in `x-replay-of` (replacing the id of an
    earlier replay, so the header names the letter this record comes from)."""
    headers = {k: v for k, v in letter.letter.headers.items() if k != REPLAY_HEADER}
    headers[REPLAY_HEADER] = str(letter.id)
    return [(k, v.encode()) for k, v in headers.items()]


def decode(topics: Topics, record: Any) -> Letter | None:
    """A record of a dlq topic as a letter; None for one that is no `DeadLetter` (written by
    something else) or that names a source other than its own topic's, which replay must
    never follow: a letter decides where its payload is produced to."""
    dlq = str(record.topic).removeprefix(topics.prefix)
    try:
        letter = DeadLetter.model_validate_json(record.value or b"")
    except ValueError:
        log.warning("unreadable record in %s at %s/%s", dlq, record.partition, record.offset)
        return None
    if topics.name(dlq) != f"{letter.source_topic}{DLQ_SUFFIX}":
        log.warning("letter in %s names another source topic; ignored", dlq)
        return None
    return Letter(
        LetterId(dlq, record.partition, record.offset),
        letter,
        dlq.removesuffix(DLQ_SUFFIX),
    )


class DeadLetters:
    """Reads and replays letters; every call opens its own short-lived Kafka clients (an
    operator's page view or replay, not a hot path)."""

    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self._kafka = kafka
        self._topics = topics

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            client_id="amc-console-dead-letters",
            **producer_options(self._kafka),
        )

    async def _partitions(self, names: list[str]) -> list[TopicPartition]:
        # dlq topics appear on the first letter (auto-created): absent ones hold nothing.
        # The metadata of every topic, through the admin client's public describe_topics:
        # naming the topics would ask the broker to auto-create the absent ones, and the
        # consumer's `partitions_for_topic` knows only topics it already follows.
        admin = AIOKafkaAdminClient(
            client_id="amc-console-dead-letters", **producer_options(self._kafka)
        )
        await admin.start()
        try:
            described = await admin.describe_topics()
        finally:
            await admin.close()
        partitions = {
            t["topic"]: sorted(p["partition"] for p in t["partitions"])
            for t in described
            if t["error_code"] == 0
        }
        return [
            TopicPartition(self._topics.name(name), p)
            for name in names
            for p in partitions.get(self._topics.name(name), ())
        ]

    async def _bounds(
        self, consumer: AIOKafkaConsumer, parts: list[Any]
    ) -> dict[Any, tuple[int, int]]:
        if not parts:
            return {}
        first = await consumer.beginning_offsets(parts)
        end = await consumer.end_offsets(parts)
        return {tp: (first[tp], end[tp]) for tp in parts}

    async def count(self, topic: str | None = None) -> int:
        """Letters kept in the dlq topics (retention decides how long), from offsets only."""
        consumer = self._consumer()
        await consumer.start()
        try:
            names = [topic] if topic else list(DLQ_TOPICS)
            bounds = await self._bounds(consumer, await self._partitions(names))
            return sum(end - first for first, end in bounds.values())
        finally:
            await consumer.stop()

    async def newest(self, topic: str | None, limit: int) -> list[Letter]:
        """The `limit` newest letters (of one dlq topic, or all): at most `limit` records
        read per partition, whatever the topics hold."""
        consumer = self._consumer()
        await consumer.start()
        try:
            names = [topic] if topic else list(DLQ_TOPICS)
            bounds = await self._bounds(consumer, await self._partitions(names))
            ranges = {tp: (max(first, end - limit), end) for tp, (first, end) in bounds.items()}
            records = await _read(consumer, ranges)
        finally:
            await consumer.stop()
        letters = (decode(self._topics, r) for r in records)
        return newest_first((x for x in letters if x is not None), limit)

    async def get(self, ids: Iterable[LetterId]) -> dict[LetterId, Letter]:
        """The letters with these ids that exist (still retained); the others are absent."""
        wanted = set(ids)
        if not wanted:
            return {}
        consumer = self._consumer()
        await consumer.start()
        try:
            names = sorted({i.topic for i in wanted})
            bounds = await self._bounds(consumer, await self._partitions(names))
            found: dict[LetterId, Letter] = {}
            for i in sorted(wanted):
                tp = TopicPartition(self._topics.name(i.topic), i.partition)
                first, end = bounds.get(tp, (0, 0))
                if not first <= i.offset < end:
                    continue
                for record in await _read(consumer, {tp: (i.offset, i.offset + 1)}):
                    letter = decode(self._topics, record)
                    if letter is not None and letter.id == i:
                        found[i] = letter
            return found
        finally:
            await consumer.stop()

    @contextlib.asynccontextmanager
    async def replayer(self) -> AsyncIterator[Send]:
        """`send(letter)` produces the letter's original record to its source topic and
        returns once the broker acknowledged it (acks=all)."""
        producer = AIOKafkaProducer(
            client_id="amc-console-replay", acks="all", **producer_options(self._kafka)
        )
        await producer.start()

        async def send(letter: Letter) -> None:
            d = letter.letter
            await producer.send_and_wait(
                d.source_topic,
                d.payload.encode(),
                key=d.key.encode() if d.key is not None else None,
                headers=replay_headers(letter),
            )

        try:
            yield send
        finally:
            await producer.stop()


async def _read(consumer: AIOKafkaConsumer, ranges: dict[Any, tuple[int, int]]) -> list[Any]:
    """Every record in [start, stop) of each partition. `stop` is at most the end offset
    seen before, so the loop ends; positions (not the last offset seen) decide, because
    offsets may have gaps (compaction, transaction markers)."""
    pending = {tp: stop for tp, (start, stop) in ranges.items() if start < stop}
    if not pending:
        return []
    consumer.assign(list(pending))
    for tp, (start, _) in ranges.items():
        if tp in pending:
            consumer.seek(tp, start)
    out: list[Any] = []
    async with asyncio.timeout(READ_DEADLINE_S):
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < pending.get(tp, -1))
            for tp in list(pending):
                if await consumer.position(tp) >= pending[tp]:
                    del pending[tp]
    return out
