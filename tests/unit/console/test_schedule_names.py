"""The schedule-name cache of the live feed: bounded, expiring, one request per distinct
schedule per burst, and a failure shows the id."""

from __future__ import annotations

import asyncio

import pytest

from services.console.schedule_names import ScheduleNames


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scheduler:
    """The lookup's other end: counts asks, answers from a table, can be held or fail."""

    def __init__(self, names: dict[str, str | None]) -> None:
        self.names = names
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False
        self.was_asked = asyncio.Event()

    async def __call__(self, schedule_id: str) -> str | None:
        self.asked.append(schedule_id)
        self.was_asked.set()
        await self.release.wait()
        if self.fail:
            raise ConnectionError("scheduler down")
        return self.names.get(schedule_id)


async def test_a_burst_asks_once_per_distinct_schedule_and_then_not_until_the_ttl() -> None:
    clock = Clock()
    scheduler = Scheduler({"s1": "Daily reach", "s2": "Weekly overlap", "s3": None})
    names = ScheduleNames(scheduler, ttl_s=60, clock=clock)
    burst = ["s1", "s2", "s1", "s3", "s1", "s2"]
    assert await names.names(burst) == {"s1": "Daily reach", "s2": "Weekly overlap"}
    assert sorted(scheduler.asked) == ["s1", "s2", "s3"]
    assert await names.names(burst) == {"s1": "Daily reach", "s2": "Weekly overlap"}
    assert len(scheduler.asked) == 3
    scheduler.names["s1"] = "Renamed"
    clock.now = 60.0
    assert await names.name("s1") == "Renamed"
    assert len(scheduler.asked) == 4


async def test_concurrent_asks_for_one_schedule_share_one_request() -> None:
    scheduler = Scheduler({"s1": "Daily reach"})
    scheduler.release.clear()
    names = ScheduleNames(scheduler)
    waiting = [asyncio.create_task(names.name("s1")) for _ in range(5)]
    await scheduler.was_asked.wait()
    scheduler.release.set()
    assert await asyncio.gather(*waiting) == ["Daily reach"] * 5
    assert scheduler.asked == ["s1"]


async def test_a_failed_lookup_answers_none_and_is_not_repeated_until_its_shorter_ttl() -> None:
    clock = Clock()
    scheduler = Scheduler({"s1": "Daily reach"})
    scheduler.fail = True
    names = ScheduleNames(scheduler, ttl_s=300, failure_ttl_s=10, clock=clock)
    assert await names.names(["s1", "s1"]) == {}
    assert await names.name("s1") is None
    assert scheduler.asked == ["s1"]
    scheduler.fail = False
    clock.now = 10.0
    assert await names.name("s1") == "Daily reach"
    assert scheduler.asked == ["s1", "s1"]


async def test_the_cache_holds_at_most_max_entries_dropping_the_least_recently_used() -> None:
    scheduler = Scheduler({f"s{i}": f"name {i}" for i in range(4)})
    names = ScheduleNames(scheduler, max_entries=2)
    await names.name("s0")
    await names.name("s1")
    await names.name("s0")  # s0 is now the most recently used
    await names.name("s2")  # evicts s1
    assert names.cached("s0") == (True, "name 0")
    assert names.cached("s1") == (False, None)
    assert names.cached("s2") == (True, "name 2")


def test_bad_bounds_are_refused_with_a_clear_error() -> None:
    async def lookup(_: str) -> str | None:
        return None

    with pytest.raises(ValueError, match="max_entries"):
        ScheduleNames(lookup, max_entries=0)
    with pytest.raises(ValueError, match="ttl"):
        ScheduleNames(lookup, ttl_s=0)
