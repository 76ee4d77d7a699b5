"""Topic names, defined once. A deployment-wide prefix lets several stacks share one cluster."""

from __future__ import annotations

from dataclasses import dataclass

DLQ_SUFFIX = ".dlq"


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class Topics:
    """Resolves logical topic names (as in the contract) to the names used on the broker."""

    prefix: str = ""

    def name(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def dlq(self, topic: str) -> str:
        return dlq_topic(self.name(topic))
