"""The live feed: every contract topic (and its .dlq) followed from the newest offset, fanned
out to the browsers' EventSource connections as short summaries.

No consumer group: each replica reads every partition itself and commits nothing, because a
feed is a view (what a browser missed while closed it reads from the pages) and a group would
split events between replicas. Summaries carry ids and states only, never a payload's secrets
(`token.refreshed` holds an encrypted access token; a dead letter holds a whole record).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiokafka import AIOKafkaConsumer

from services.console.schedule_names import ScheduleNames
from shared.broker import producer_options
from shared.config import KafkaSettings
from shared.contract import Topics
from shared.topics_admin import contract_topics

log = logging.getLogger(__name__)

# What a browser may see of an event: identifiers and states.
SAFE_KEYS = (
    "status",
    "schedule_id",
    "run_id",
    "collection_id",
    "execution_id",
    "amc_execution_id",
    "request_id",
    "user_id",
    "instance_id",
    "workflow_id",
    "reason",
    "reauth_required",
    "error_type",
)


def summarise(
    topic: str, prefix: str, value: bytes | None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    name = topic.removeprefix(prefix)
    summary: dict[str, Any] = {"topic": name, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        body = json.loads(value or b"")
    except ValueError:
        return summary
    if not isinstance(body, dict):
        return summary
    fields = safe_fields(body)
    return summary | fields | about(fields, names)


_ORIGINS = {"schedule": "a schedule's run", "collection": "a collection's week"}
_PAGES = (
    ("execution_id", "/executions/"),
    ("schedule_id", "/schedules/"),
    ("collection_id", "/collections/"),
    ("user_id", "/users/"),
)


def about(fields: Mapping[str, Any], names: Mapping[str, str] | None = None) -> dict[str, str]:
    """What an event is about, in words, and the console page of it (the execution, schedule,
    collection or user it names). From the event's own safe fields, plus the schedule's name
    when `names` (looked up by `ScheduleNames`, a schedule's name is not in its events) has
    it; without one the words are what the event itself says."""
    said: dict[str, str] = {}
    for key, page in _PAGES:
        if isinstance(fields.get(key), str) and fields[key]:
            said["link"] = page + quote(fields[key], safe="")
            break
    parts = []
    origin = fields.get("origin")
    schedule_id = fields.get("schedule_id")
    if isinstance(schedule_id, str) and names and names.get(schedule_id):
        parts.append(f"schedule {names[schedule_id]}")
    elif isinstance(origin, dict) and origin.get("kind") in _ORIGINS:
        parts.append(_ORIGINS[origin["kind"]])
    for key, word in (("workflow_id", "workflow"), ("instance_id", "on"), ("user_id", "for")):
        if isinstance(fields.get(key), str) and fields[key]:
            parts.append(f"{word} {fields[key]}")
    if parts:
        said["about"] = ", ".join(parts)
    return said


def safe_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of an event's JSON a page may show (the dead letters page uses the same rule
    for refused payloads): identifiers and states, never anything else."""
    fields: dict[str, Any] = {}
    for key in SAFE_KEYS:
        if isinstance(body.get(key), str | bool | int):
            fields[key] = body[key]
    origin = body.get("origin")
    if isinstance(origin, dict):
        fields["origin"] = {k: str(origin[k]) for k in ("kind", "id") if k in origin}
    return fields


class LiveFeed:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Topics,
        history: int = 50,
        names: ScheduleNames | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._names = names
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.recent: deque[dict[str, Any]] = deque(maxlen=history)

    def publish(self, event: dict[str, Any]) -> None:
        self.recent.appendleft(event)
        for queue in list(self._subscribers):
            # A browser that stopped reading loses events rather than holding memory.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=200)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def named(self, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The summaries with their schedules' names in `about`: one lookup per batch and
        distinct schedule not cached, not one per event."""
        if self._names is None:
            return summaries
        ids = [s["schedule_id"] for s in summaries if isinstance(s.get("schedule_id"), str)]
        if not ids:
            return summaries
        names = await self._names.names(ids)
        if not names:
            return summaries
        return [s | about(s, names) for s in summaries]

    async def run(self, stop: asyncio.Event) -> None:
        """Background loop: follow the topics until `stop` (the runtime restarts it on error)."""
        consumer = AIOKafkaConsumer(
            *contract_topics(self._topics),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="amc-console-feed",
            **producer_options(self._kafka),
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                summaries = [
                    summarise(record.topic, self._topics.prefix, record.value)
                    for records in batches.values()
                    for record in records
                ]
                for summary in await self.named(summaries):
                    self.publish(summary)
        finally:
            await consumer.stop()
