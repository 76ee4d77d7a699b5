"""Fixtures: a token service served over real HTTP, the simulator as its LWA, a leak guard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from amclocal.simulator import RunningSimulator, SimControl
from services.token.app import app_for
from services.token.runtime import TokenRuntime
from shared.topics_admin import contract_topics, ensure_topics
from tests.integration.token.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    TokenHarness,
    find_leaks,
    settings_for,
)
from tests.support.http import serve_app


def capture_issued(secrets: set[str]) -> Any:
    """httpx response hook: remember every token LWA (the simulator) hands out."""

    async def hook(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/auth/o2/token") and response.is_success:
            await response.aread()
            body = response.json()
            secrets.update(str(body[k]) for k in ("access_token", "refresh_token") if k in body)

    return hook


@pytest.fixture
def token_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change the service's settings."""
    return {}


@pytest.fixture
async def token_service(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    simulator: SimControl,
    simulator_server: RunningSimulator,
    caplog: pytest.LogCaptureFixture,
    token_overrides: dict[str, Any],
) -> AsyncIterator[TokenHarness]:
    caplog.set_level(logging.DEBUG)
    await simulator.register_client(CLIENT_ID, CLIENT_SECRET)
    settings = settings_for(
        uid, database_url, kafka_bootstrap, simulator_server.base_url, **token_overrides
    )
    secrets: set[str] = {CLIENT_SECRET}
    lwa_http = httpx.AsyncClient(event_hooks={"response": [capture_issued(secrets)]})
    service = TokenRuntime(settings, lwa_http=lwa_http)
    await ensure_topics(kafka_bootstrap, contract_topics(service.topics))
    async with (
        httpx.AsyncClient(timeout=30.0) as http,
        serve_app(app_for(service)) as base_url,
    ):
        harness = TokenHarness(
            service=service,
            settings=settings,
            sim=simulator,
            base_url=base_url,
            http=http,
            bootstrap=kafka_bootstrap,
            storage_keys=[settings.encryption_keys.get_secret_value()],
            event_key=settings.event_encryption_keys.get_secret_value(),
            secrets=secrets,
        )
        yield harness
        # The guard, after every scenario: no token in logs, events or API answers.
        texts = await harness.all_texts(caplog)
        everything = harness.secrets | await harness.stored_secrets()
    await lwa_http.aclose()
    leaks = find_leaks(texts, everything)
    assert not leaks, f"tokens in clear text: {leaks}"
