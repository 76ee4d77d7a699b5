"""Create the contract's topics (and their DLQs) where the platform does not manage them."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contract import ALL_EVENTS, Topics


def contract_topics(topics: Topics) -> list[str]:
    names = [topics.name(e.topic) for e in ALL_EVENTS]
    return names + [f"{n}.dlq" for n in names]


async def ensure_topics(bootstrap: str, names: Iterable[str], *, partitions: int = 3) -> list[str]:
    """Create the missing topics; returns the names created now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
            )
        return missing
    finally:
        await admin.close()
