"""A stand-in for the poller: reads week.requested, answers with execution.* events.

Like the real poller it creates exactly one execution per (origin id, attempt) (a repeated
request is only counted), submits it, and completes it `duration_s` after reading the
request. A plan decides each execution's outcome from the request; `hold()` keeps
executions from completing until `release()`, so tests can look at a moment without racing
the clock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contract import (
    Event,
    ExecutionCompleted,
    ExecutionError,
    ExecutionSubmitted,
    ResultLocation,
    Topics,
    WeekRequested,
)

Outcome = Literal["ok", "transient", "timeout", "permanent", "drop", "results_lost"]
Plan = Callable[[WeekRequested], Outcome]


class _FastReader:
    """Reads one topic from the beginning by manual assignment (no group join), with fetches
    that return within 5 ms (the local broker holds a fetch for much of its wait even when a
    record arrives, where Kafka answers at once), so the poller's reaction time does not hide
    the collector's."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> _FastReader:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=5,
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self._topic)
        while not partitions:
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
            partitions = consumer.partitions_for_topic(self._topic)
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def read(self) -> list[bytes]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
        return [m.value for messages in batches.values() for m in messages]


def always_ok(_: WeekRequested) -> Outcome:
    return "ok"


@dataclass
class Execution:
    execution_id: uuid.UUID
    request: WeekRequested
    outcome: Outcome
    completed: bool = False


@dataclass
class FakePoller:
    bootstrap: str
    topics: Topics
    duration_s: float = 0.3
    plan: Plan = always_ok
    executions: dict[str, Execution] = field(default_factory=dict)
    requests_seen: int = 0
    duplicate_requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    events_sent: int = 0
    dropped: set[str] = field(default_factory=set)
    # Seconds from a request's occurred_at (the collector's transaction) to the poller seeing it.
    request_delays: list[float] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _loop_task: asyncio.Task[None] | None = None
    _producer: AIOKafkaProducer | None = None
    _reader: _FastReader | None = None

    def __post_init__(self) -> None:
        self._released.set()

    async def __aenter__(self) -> FakePoller:
        # No linger: each send is one record awaited alone, so lingering only delays it.
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await self._producer.start()
        self._reader = _FastReader(self.bootstrap, self.topics.name(WeekRequested.topic))
        await self._reader.__aenter__()
        self._loop_task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in [self._loop_task, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._loop_task, *self._tasks] if t), return_exceptions=True
        )
        if self._reader is not None:
            await self._reader.__aexit__()
        if self._producer is not None:
            await self._producer.stop()

    def hold(self) -> None:
        """Executions started from now on (and running ones) do not complete until release."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # --- what tests look at ---------------------------------------------------------------

    def executions_per_week(self) -> Counter[uuid.UUID]:
        return Counter(e.request.week_id for e in self.executions.values())

    def completed(self) -> int:
        return sum(e.completed for e in self.executions.values())

    # --- the fake ---------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._reader is not None
        while True:
            for value in await self._reader.read():
                self._on_request(WeekRequested.from_bytes(value))

    def _on_request(self, request: WeekRequested) -> None:
        self.requests_seen += 1
        self.request_delays.append((datetime.now(UTC) - request.occurred_at).total_seconds())
        key = f"{request.origin.id}#{request.attempt}"
        if key in self.executions:
            self.duplicate_requests += 1
            return
        outcome = self.plan(request)
        if outcome == "drop" and key not in self.dropped:
            # As if this request were lost before the poller recorded it.
            self.dropped.add(key)
            return
        execution = Execution(uuid.uuid4(), request, outcome)
        self.executions[key] = execution
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        task = asyncio.create_task(self._execute(execution))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, e: Execution) -> None:
        # The execution runs from the moment it is accepted, while its submission is being
        # published (as AMC's runs while the poller publishes), not after that publish.
        finishes = asyncio.get_running_loop().time() + self.duration_s
        r = e.request
        amc_id = f"amc-{e.execution_id.hex[:12]}"
        await self._send(
            ExecutionSubmitted(
                execution_id=e.execution_id,
                amc_execution_id=amc_id,
                instance_id=r.run.instance_id,
                user_id=r.run.user_id,
                origin=r.origin,
            )
        )
        await asyncio.sleep(finishes - asyncio.get_running_loop().time())
        await self._released.wait()
        self.in_flight -= 1
        e.completed = True
        common = {
            "execution_id": e.execution_id,
            "origin": r.origin,
            "amc_execution_id": amc_id,
            "instance_id": r.run.instance_id,
            "user_id": r.run.user_id,
        }
        if e.outcome in ("ok", "drop"):
            done = ExecutionCompleted(
                status="SUCCEEDED",
                result=ResultLocation(uri=f"file:///tmp/{amc_id}.csv", row_count=7, size_bytes=70),
                **common,
            )
        elif e.outcome == "timeout":
            done = ExecutionCompleted(
                status="TIMED_OUT",
                error=ExecutionError(code="TIMED_OUT", message="ran too long", retryable=True),
                **common,
            )
        elif e.outcome == "results_lost":
            # What the poller answers when AMC's result could not be fetched in time: the
            # execution ran at AMC, so a new one would be a duplicate (not retryable).
            done = ExecutionCompleted(
                status="FAILED",
                error=ExecutionError(
                    code="DOWNLOAD_FAILED",
                    message="no result after trying for 24 hours",
                    retryable=False,
                ),
                **common,
            )
        else:
            transient = e.outcome == "transient"
            done = ExecutionCompleted(
                status="FAILED",
                error=ExecutionError(
                    code="AMC_UNAVAILABLE" if transient else "AMC_VALIDATION",
                    message="AMC answered 503" if transient else "unknown column in workflow",
                    retryable=transient,
                ),
                **common,
            )
        await self._send(done)

    async def _send(self, event: Event) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.topics.name(event.topic), event.to_bytes(), key=event.key()
        )
        self.events_sent += 1
