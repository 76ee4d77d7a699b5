"""The lease keeper: which leases it renews, how often, and what the settings allow."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.poller.settings import PollerSettings
from services.token.settings import TokenSettings
from shared.leases import LeaseKeeper, renewal_interval


def test_the_default_interval_is_a_quarter_of_the_lease() -> None:
    assert renewal_interval(10.0, None, lease_name="L", renew_name="R") == 2.5


def test_an_interval_up_to_a_third_of_the_lease_is_kept() -> None:
    assert renewal_interval(9.0, 3.0, lease_name="L", renew_name="R") == 3.0


@pytest.mark.parametrize("renew_s", [3.5, 10.0, 20.0])
def test_an_interval_above_a_third_of_the_lease_is_refused_naming_both(renew_s: float) -> None:
    with pytest.raises(ValueError, match=r"RENEW_X .* at most a third of LEASE_X \(10s\)"):
        renewal_interval(10.0, renew_s, lease_name="LEASE_X", renew_name="RENEW_X")


def test_the_services_refuse_a_renewal_too_close_to_the_lease() -> None:
    with pytest.raises(ValueError, match="POLLER_LEASE_RENEW_S"):
        PollerSettings(lease_s=10, lease_renew_s=5)
    with pytest.raises(ValueError, match="TOKEN_CLAIM_RENEW_S"):
        TokenSettings(claim_lease_s=10, claim_renew_s=4)
    assert PollerSettings(lease_s=12).lease_renew_interval_s == 3.0
    assert TokenSettings(claim_lease_s=6, claim_renew_s=2).claim_renew_interval_s == 2.0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.third_call = asyncio.Event()

    async def __call__(self, keys: Sequence[str]) -> int:
        self.calls.append(sorted(keys))
        if len(self.calls) >= 3:
            self.third_call.set()
        return len(keys)


async def test_held_keys_are_renewed_until_released_as_often_as_held() -> None:
    renew = Recorder()
    keeper = LeaseKeeper[str]("t", renew, 1.0)
    keeper.hold("a")
    keeper.hold("b")
    keeper.hold("a")  # a second job on "a" began before the first one ended
    assert await keeper.renew_once() == 2
    keeper.release("a")
    assert await keeper.renew_once() == 2
    keeper.release_all(["a", "b"])
    assert await keeper.renew_once() == 0
    assert renew.calls == [["a", "b"], ["a", "b"]]  # nothing held: no round trip


async def test_running_renews_in_the_background_and_survives_a_failed_renewal() -> None:
    recorder = Recorder()

    async def flaky(keys: Sequence[str]) -> int:
        count = await recorder(keys)
        if count and len(recorder.calls) == 1:
            raise OSError("database unreachable")
        return count

    keeper = LeaseKeeper[str]("t", flaky, 0.01)
    keeper.hold("a")
    async with keeper.running():
        await asyncio.wait_for(recorder.third_call.wait(), 2.0)
    count = len(recorder.calls)
    await asyncio.sleep(0.05)
    assert len(recorder.calls) == count  # stopped with the block


async def test_run_keeps_renewing_after_stop_until_the_last_job_released() -> None:
    renew = Recorder()
    keeper = LeaseKeeper[str]("t", renew, 0.01)
    keeper.hold("draining")
    stop = asyncio.Event()
    stop.set()
    task = asyncio.create_task(keeper.run(stop))
    await asyncio.wait_for(renew.third_call.wait(), 2.0)
    assert not task.done()
    keeper.release("draining")
    await asyncio.wait_for(task, 1.0)
