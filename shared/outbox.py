"""Transactional outbox: enqueue events with the state change, relay them to Kafka afterwards.

`Outbox.enqueue` writes the event in the caller's transaction, together with the trace
context that was current, and NOTIFYs the relay (delivered only if the transaction commits).
`OutboxRelay` publishes pending rows in id order as a batch (sends them all, then awaits every
acknowledgement), then marks them sent in one statement. A crash between publish and mark
republishes the batch: delivery is at-least-once and consumers de-duplicate by `event_id`.
One relay per schema publishes at a time (transaction-scoped advisory lock), which keeps
per-key order with any replica count. A busy relay starts a batch at most every
`min_batch_interval_s`, so a stream of small commits is published in a few large batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import asyncpg
from opentelemetry import propagate

from shared.contract import Event, Topics
from shared.db.pool import quote_ident
from shared.db.prune import delete_in_batches
from shared.db.status import rows_affected
from shared.doorbell import Doorbell

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection


def notify_channel(schema: str) -> str:
    return f"amc_outbox_{schema}"[:63]


class Outbox:
    """Writes events into the outbox of one schema, inside the caller's transaction."""

    def __init__(self, schema: str, topics: Topics) -> None:
        self.schema = schema
        self.topics = topics
        self._table = f"{quote_ident(schema)}.outbox"
        self._channel = notify_channel(schema)

    async def enqueue(
        self,
        conn: Connection,
        *events: Event,
        trace_contexts: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        """Store `events` in the caller's transaction; each is published later under the
        trace context that was current here, or under its own entry of `trace_contexts`
        (one per event, for work that fires many runs, each its own trace, in one batch)."""
        if not events:
            return
        if trace_contexts is None:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            # Serialized once, not once per event by the connection's jsonb codec.
            headers = [json.dumps(carrier)] * len(events)
        elif len(trace_contexts) != len(events):
            raise ValueError(f"{len(trace_contexts)} trace contexts given for {len(events)} events")
        else:
            headers = [json.dumps(dict(c)) for c in trace_contexts]
        # One statement, one round trip: a handler that emits pays for it in every event. Ids
        # follow the order of `events`, which is the order the relay publishes them in.
        await conn.execute(
            f"""WITH stored AS (
                    INSERT INTO {self._table} (event_id, topic, message_key, payload, headers)
                    SELECT event_id, topic, message_key, payload, headers::jsonb
                    FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::text[])
                         WITH ORDINALITY AS e (event_id, topic, message_key, payload, headers, n)
                    ORDER BY n)
                SELECT pg_notify($6, '')""",
            [e.event_id for e in events],
            [self.topics.name(e.topic) for e in events],
            [e.key() for e in events],
            [e.to_bytes() for e in events],
            headers,
            self._channel,
        )


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: bytes
    payload: bytes
    headers: dict[str, str]


class Publisher(Protocol):
    """Publishes a batch of rows in their order and returns once the broker has acknowledged
    every record; raises if any was not (the relay then publishes the batch again).

    Each row's `headers` carry the trace context that was current when it was enqueued: the
    records continue that trace."""

    async def __call__(self, rows: Sequence[OutboxRow]) -> None: ...


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        schema: str,
        publish: Publisher,
        *,
        listen_dsn: str | None = None,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        min_batch_interval_s: float = 0.01,
        retention: timedelta = timedelta(hours=72),
        processed_retention: timedelta = timedelta(days=14),
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._table = f"{quote_ident(schema)}.outbox"
        self._publish = publish
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._min_batch_interval_s = min_batch_interval_s
        self._retention = retention
        self._processed_retention = processed_retention
        self._processed = f"{quote_ident(schema)}.processed_events"
        self._bell = Doorbell(notify_channel(schema), dsn=listen_dsn, what="outbox")
        self._stopping = asyncio.Event()
        self._lock_key = f"amc-outbox:{schema}"

    def wake(self) -> None:
        self._bell.ring()

    async def relay_once(self) -> int:
        """Publish one batch of pending events; returns how many were sent."""
        async with self._pool.acquire() as conn, conn.transaction():
            # One round trip takes the lock (no rows when another relay holds it) and reads
            # the batch. The commit need not wait for the disk: a mark lost in a database crash
            # only publishes the batch again, which consumers de-duplicate.
            records = await conn.fetch(
                f"""WITH owner AS (
                        SELECT pg_try_advisory_xact_lock(hashtext($1)) AS held,
                               set_config('synchronous_commit', 'off', true))
                    SELECT id, topic, message_key, payload, headers FROM {self._table}, owner
                    WHERE owner.held AND sent_at IS NULL ORDER BY id LIMIT $2""",
                self._lock_key,
                self._batch_size,
            )
            if not records:
                return 0
            rows = [
                OutboxRow(r["id"], r["topic"], r["message_key"], r["payload"], r["headers"])
                for r in records
            ]
            await self._publish(rows)
            await conn.execute(
                f"UPDATE {self._table} SET sent_at = now() WHERE id = ANY($1::bigint[])",
                [row.id for row in rows],
            )
        return len(rows)

    async def prune(self) -> int:
        """Delete sent outbox rows past their retention, and the ids of handled events past
        theirs (the consumers' de-duplication needs an id only while its record can still be
        redelivered); returns the rows deleted. Deletes go in bounded batches so no pass holds
        many row locks or one long transaction."""
        deleted = 0
        for statement, keep in (
            (
                f"""DELETE FROM {self._table} WHERE id IN (
                        SELECT id FROM {self._table}
                        WHERE sent_at < now() - $1::interval LIMIT $2)""",
                self._retention,
            ),
            (
                f"""DELETE FROM {self._processed} WHERE event_id IN (
                        SELECT event_id FROM {self._processed}
                        WHERE processed_at < now() - $1::interval LIMIT $2)""",
                self._processed_retention,
            ),
        ):

            async def delete(batch: int, statement: str = statement, keep: timedelta = keep) -> int:
                return rows_affected(await self._pool.execute(statement, keep, batch))

            deleted += await delete_in_batches(delete)
        return deleted

    async def run(self) -> None:
        """Relay until `stop()`; then drain what is pending. Errors back off and retry."""
        # Without LISTEN the relay still works on its polling interval.
        await self._bell.listen()
        backoff = 0.2
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                self._bell.clear()
                started = loop.time()
                try:
                    sent = await self.relay_once()
                    backoff = 0.2
                    if loop.time() - last_prune > 60:
                        last_prune = loop.time()
                        await self.prune()
                except Exception as exc:  # the relay must outlive any broker or database outage
                    log.warning(
                        "outbox relay for %s failed, retrying in %.1fs: %s",
                        self._schema,
                        backoff,
                        exc,
                    )
                    await self._bell.sleep(self._stopping, backoff, wakeable=False)
                    backoff = min(backoff * 2, 10.0)
                    await self._bell.listen()
                    continue
                if sent < self._batch_size:
                    await self._bell.sleep(self._stopping, self._poll_interval_s)
                    # Under a stream of small commits each NOTIFY would start a batch of a few
                    # rows, paying a transaction and a produce request for each: a batch at most
                    # every `min_batch_interval_s` lets rows gather. Only a busy relay waits.
                    wait = started + self._min_batch_interval_s - loop.time()
                    if wait > 0:
                        await self._bell.sleep(self._stopping, wait, wakeable=False)
            await self._drain()
        finally:
            await self._bell.close()

    async def _drain(self, timeout_s: float = 10.0) -> None:
        """The last publish before shutdown; what it cannot send stays in the outbox for the
        next start (nothing is lost), but an operator should know why it stayed."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.relay_once():
                    pass
        except Exception as exc:  # shutdown goes on; the rows wait in the outbox
            log.warning("final outbox drain for %s failed: %r", self._schema, exc)

    def stop(self) -> None:
        self._stopping.set()
