"""The one failure policy of background loops: a database outage is a warning and a restart,
anything else a traceback and a restart; pauses double while failures follow each other."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

import shared.supervise
from shared.supervise import Loop, supervise


def _failing(*errors: BaseException) -> tuple[list[float], Loop]:
    """A loop that raises `errors` one per start, then returns; records when it started."""
    starts: list[float] = []
    left = list(errors)

    async def loop(stop: asyncio.Event) -> None:
        starts.append(asyncio.get_running_loop().time())
        if left:
            raise left.pop(0)

    return starts, loop


async def test_a_database_outage_is_one_warning_a_try_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shared.supervise")
    starts, loop = _failing(
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    )
    await supervise("svc loop sender", loop, asyncio.Event(), first_pause_s=0.01)
    assert len(starts) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.exc_info for r in warnings] == [None, None]
    assert "svc loop sender: database unavailable (ConnectionRefusedError" in warnings[0].message
    assert "the database system is starting up" in warnings[1].message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_anything_else_is_logged_with_its_traceback_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts, loop = _failing(KeyError("rule"))
    await supervise("svc loop sender", loop, asyncio.Event(), first_pause_s=0.01)
    assert len(starts) == 2
    [crash] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert crash.getMessage().startswith("svc loop sender crashed; starting it again")
    assert crash.exc_info is not None
    assert isinstance(crash.exc_info[1], KeyError)


async def test_pauses_double_while_failures_follow_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paused: list[float] = []

    async def pause(stop: asyncio.Event, seconds: float) -> None:
        paused.append(seconds)

    monkeypatch.setattr(shared.supervise, "pause", pause)
    _, loop = _failing(*(OSError("down") for _ in range(5)))
    await supervise("svc loop x", loop, asyncio.Event(), first_pause_s=1, longest_pause_s=5)
    assert paused == [1, 2, 4, 5, 5]


async def test_a_stop_during_the_pause_ends_it() -> None:
    stop = asyncio.Event()

    async def loop(_: asyncio.Event) -> None:
        stop.set()
        raise OSError("down")

    async with asyncio.timeout(5):
        await supervise("svc loop x", loop, stop, first_pause_s=60)
