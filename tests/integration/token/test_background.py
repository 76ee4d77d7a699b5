"""The proactive refresh loop, running by itself on a short period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.contract import TokenRefreshed
from tests.integration.token.harness import TokenHarness, refreshed_for, wait_until


@pytest.fixture
def token_overrides() -> dict[str, Any]:
    # The real loop, on a short period, for the test below.
    return {"refresh_initial_delay_s": 0.0, "refresh_interval_s": 0.5}


async def test_the_background_cycle_runs_by_itself(token_service: TokenHarness) -> None:
    h = token_service
    await h.seed("auto", await h.sim_user("auto"), expires_in=timedelta(seconds=5))

    async def refreshed() -> bool:
        row = await h.row("auto")
        soon = await h.pool.fetchval("SELECT now() + interval '30 minutes'")
        return bool(row.expires_at > soon)

    await wait_until(refreshed, what="the background cycle to refresh the token")
    topic = h.topic(TokenRefreshed.topic)
    async with h.reader() as reader:
        await reader.wait_for(lambda r: bool(refreshed_for(r, topic, "auto")))
