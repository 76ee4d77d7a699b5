"""A relay in its own process, so a test can kill it with SIGKILL mid-batch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from shared.db import create_pool
from shared.outbox import OutboxRelay, OutboxRow


async def main(dsn: str, schema: str, bootstrap: str, batch: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    pool = await create_pool(dsn, schema)

    async def publish(rows: Sequence[OutboxRow]) -> None:
        acks = []
        for row in rows:
            # Slow enough that a kill lands inside a batch: some records sent, none marked.
            await asyncio.sleep(0.002)
            acks.append(await producer.send(row.topic, row.payload, key=row.key))
        await asyncio.gather(*acks)

    relay = OutboxRelay(pool, schema, publish, batch_size=batch, poll_interval_s=0.1)
    print("ready", flush=True)
    while await relay.relay_once():
        pass
    print("drained", flush=True)
    await producer.stop()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
