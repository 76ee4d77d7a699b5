"""Reading the spans a test's process finished (the session fixture `spans` collects them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def attr(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


async def wait_spans(
    spans: InMemorySpanExporter,
    select: Callable[[ReadableSpan], bool],
    count: int,
    timeout_s: float = 20.0,
    until: Callable[[list[ReadableSpan]], bool] = lambda _: True,
) -> list[ReadableSpan]:
    """At least `count` finished spans that `select` picks (and that satisfy `until`)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [s for s in spans.get_finished_spans() if select(s)]
        if len(found) >= count and until(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(found)} of {count} spans after {timeout_s} s")
        await asyncio.sleep(0.05)
