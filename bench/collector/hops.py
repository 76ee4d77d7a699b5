"""Where a wave's overhead goes: timestamps patched in around each hop of the chain.

`python -m bench.collector --hops` installs these wrappers before the run and adds a `hops`
object to the result: for every consumer batch that held completions, the time of each hop,
then the medians over the batches. The chain of one slot (bench/collector/NOTES.md):

    fake poller sends execution.completed (send start)
    -> acknowledged by the broker (send ack)
    -> the collector's consumer hands the batch over (consume start)
    -> the batch transaction (tx start, tx end), then the offsets commit (consume end)
    -> the relay's round publishes the requests (relay start, relay end)
    -> the fake poller reads week.requested (read) and completes it duration later.

Every figure is wall-clock (time.time()), the clock of the events' `occurred_at`, which ties
a request to the transaction that enqueued it. The wrappers cost a few microseconds a call.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared import consumer as consumer_module
from shared.consumer import EventConsumer
from shared.contract import Event, ExecutionCompleted, WeekRequested
from shared.outbox import OutboxRelay
from tests.integration.collector.fake_poller import FakePoller


@dataclass
class _Batch:
    consume_start: float
    completions: list[str]  # execution ids
    # consume_start: the consumer's poll returned the batch
    tx_start: float = 0.0
    tx_end: float = 0.0
    consume_end: float = 0.0


@dataclass
class Timeline:
    sends: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> start, ack
    batches: list[_Batch] = field(default_factory=list)
    relays: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, rows
    reads: list[tuple[float, float]] = field(default_factory=list)  # occurred_at, read

    def report(self, started: float, ended: float) -> dict[str, Any]:
        """`started` and `ended`: when the collection was created and seen COMPLETED."""
        rows = [r for b in self.batches if b.completions for r in self._hops(b)]
        if not rows:
            return {}
        keys = rows[0].keys()
        reads = sorted(read for _, read in self.reads)
        sends = sorted(start for start, _ in self.sends.values())
        # How late the fake sends a completion after its duration (its timer and its loop).
        late = [s - r for r, s in zip(reads, sends, strict=False)]
        return {
            "create_to_first_read_ms": round(1000 * (reads[0] - started), 1),
            "last_send_to_completed_seen_ms": round(1000 * (ended - sends[-1]), 1),
            "read_to_send_minus_duration_median_ms": round(
                1000 * (statistics.median(late) - statistics.median(round(x) for x in late)), 1
            ),
            "batches_with_completions": sum(1 for b in self.batches if b.completions),
            "completions_per_batch_median": statistics.median(
                len(b.completions) for b in self.batches if b.completions
            ),
            "relay_rounds": len(self.relays),
            "median_ms": {
                k: round(1000 * statistics.median(r[k] for r in rows if k in r), 1) for k in keys
            },
            "p90_ms": {k: round(1000 * _p90([r[k] for r in rows if k in r]), 1) for k in keys},
            "mean_ms": {
                k: round(1000 * statistics.fmean(r[k] for r in rows if k in r), 1) for k in keys
            },
        }

    def _hops(self, b: _Batch) -> list[dict[str, float]]:
        """One row per completion of the batch (each is one slot's hop)."""
        # The first round after the commit that sent something; a round that had started
        # before the commit may have sent the rows already (then no round is matched).
        relay = next(
            (r for r in self.relays if b.tx_end - 0.0005 <= r[0] < b.tx_end + 0.1 and r[2]), None
        )
        reads = [read for occurred, read in self.reads if b.tx_start <= occurred <= b.tx_end]
        out = []
        for execution_id in b.completions:
            if execution_id not in self.sends:
                continue
            start, ack = self.sends[execution_id]
            row = {
                "send_start_to_ack": ack - start,
                "ack_to_poll": b.consume_start - ack,
                "poll_to_tx": b.tx_start - b.consume_start,
                "tx": b.tx_end - b.tx_start,
                "offset_commit": b.consume_end - b.tx_end,
            }
            if relay is not None:
                row["tx_end_to_relay"] = relay[0] - b.tx_end
                row["relay_round"] = relay[1] - relay[0]
                if reads:
                    row["relay_end_to_read"] = max(reads) - relay[1]
            if reads:
                row["slot_overhead"] = max(reads) - start
            out.append(row)
        return out


def install(timeline: Timeline) -> Callable[[], None]:
    """Wrap the hops; returns the function that takes the wrappers off again."""
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, make(original))
        undo.append(lambda: setattr(owner, name, original))

    def send(original: Callable[[FakePoller, Event], Awaitable[None]]) -> Any:
        async def timed(self: FakePoller, event: Event) -> None:
            started = time.time()
            await original(self, event)
            if isinstance(event, ExecutionCompleted):
                timeline.sends[str(event.execution_id)] = (started, time.time())

        return timed

    def on_request(original: Callable[[FakePoller, WeekRequested], None]) -> Any:
        def timed(self: FakePoller, request: WeekRequested) -> None:
            timeline.reads.append((request.occurred_at.timestamp(), time.time()))
            original(self, request)

        return timed

    def poll(original: Callable[[int, int], Any]) -> Any:
        def make(max_records: int, timeout_ms: int) -> Any:
            inner = original(max_records, timeout_ms)

            async def timed(consumer: Any) -> Any:
                records = await inner(consumer)
                if records:
                    timeline.batches.append(_Batch(time.time(), _completions(records)))
                return records

            return timed

        return make

    def handle(original: Callable[[EventConsumer, Any], Awaitable[Any]]) -> Any:
        async def timed(self: EventConsumer, records: Any) -> Any:
            batch = timeline.batches[-1]
            batch.tx_start = time.time()
            result = await original(self, records)
            batch.tx_end = time.time()
            return result

        return timed

    def lag(original: Callable[[EventConsumer, Any], Awaitable[None]]) -> Any:
        async def timed(self: EventConsumer, msg: Any) -> None:
            await original(self, msg)
            timeline.batches[-1].consume_end = time.time()

        return timed

    def relay(original: Callable[[OutboxRelay], Awaitable[int]]) -> Any:
        async def timed(self: OutboxRelay) -> int:
            started = time.time()
            sent = await original(self)
            timeline.relays.append((started, time.time(), sent))
            return sent

        return timed

    wrap(FakePoller, "_send", send)
    wrap(FakePoller, "_on_request", on_request)
    wrap(consumer_module, "_poll", poll)
    wrap(EventConsumer, "_handle_batch", handle)
    wrap(EventConsumer, "_observe_lag", lag)
    wrap(OutboxRelay, "relay_once", relay)

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def _completions(records: Any) -> list[str]:
    return [
        str(json.loads(record.value)["execution_id"])
        for record in records
        if record.topic.endswith(ExecutionCompleted.topic)
    ]
