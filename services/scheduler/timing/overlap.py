"""Overlap: what a fire time does while earlier runs of the same schedule are still running.

- ``skip``: fire only when no run is in flight; otherwise skip this fire time.
- ``allow``: always fire; runs may overlap.
- ``buffer_one``: fire when no run is in flight; when one is and none is buffered yet, buffer
  this fire time (it starts when the running one ends); otherwise skip it. At most one waits.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["OverlapDecision", "OverlapPolicy", "decide_overlap"]

OverlapPolicy = Literal["skip", "allow", "buffer_one"]
OverlapDecision = Literal["fire", "skip", "buffer"]


def decide_overlap(policy: OverlapPolicy, running: int, buffered: int) -> OverlapDecision:
    """The decision for a due fire time, given the schedule's runs in flight and buffered."""
    if running < 0 or buffered < 0:
        raise ValueError(f"counts must not be negative: running={running}, buffered={buffered}")
    if policy == "allow" or running == 0:
        return "fire"
    if policy == "buffer_one" and buffered == 0:
        return "buffer"
    return "skip"
