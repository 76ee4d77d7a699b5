"""The AMC/LWA simulator as pytest fixtures.

`simulator` gives each test a freshly reset simulator (one server per session, served by the
session's event loop) through its control client. The server answers only while that loop
runs: code under test must talk to it with async I/O, not from a blocking call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from amclocal.simulator import RunningSimulator, SimAccount, SimConfig, SimControl, run_simulator

# Fast executions so lifecycles finish in well under a second; AMC's real limits stay.
# The daily cap is off: a test that wants it configures it (tests/integration/poller/
# test_daily_cap.py); others may create more than AMC's 30 a day on one instance.
TEST_CONFIG = SimConfig(
    seed=20240101, pending_seconds=0.1, running_seconds=0.2, daily_execution_cap=0
)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def simulator_server() -> AsyncIterator[RunningSimulator]:
    async with run_simulator(TEST_CONFIG) as running:
        yield running


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sim_http() -> AsyncIterator[httpx.AsyncClient]:
    """One connection pool for the session: building an httpx client costs ~0.1 s."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def simulator(
    simulator_server: RunningSimulator, sim_http: httpx.AsyncClient
) -> AsyncIterator[SimControl]:
    """The control client of a simulator reset to TEST_CONFIG with nothing registered.

    After the test, every AMC exchange it caused must have matched AMC's published API
    (docs/amc): a request the simulator accepted but AMC's document refuses, or an answer
    AMC's document does not describe, fails the test."""
    control = SimControl(simulator_server.base_url, http=sim_http)
    await control.reset()
    yield control
    violations = await control.contract_violations()
    assert not violations, "AMC contract violations:\n" + "\n".join(violations)


@pytest_asyncio.fixture(loop_scope="session")
async def sim_account(simulator: SimControl) -> SimAccount:
    """An LWA app, a user with a refresh token, and an AMC instance the user may use."""
    return await simulator.provision()
