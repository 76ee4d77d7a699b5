"""The poller under test: real broker, database and AMC simulator; a stand-in token service.

The token service is another engineer's; here `TokenDesk` plays its part on the bus: it reads
token.refresh_requested and answers token.refreshed (a real access token from the simulator's
LWA, encrypted with the test key ring) or token.refresh_failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from amclocal.simulator import SimAccount, SimControl
from services.poller.app import app_for
from services.poller.runtime import build_runtime
from services.poller.settings import PollerSettings
from shared.clients import InvalidGrantError, LwaClient
from shared.contract import (
    Event,
    ExecutionCompleted,
    ExecutionRequested,
    Origin,
    OriginKind,
    ScheduleDue,
    TokenRefreshed,
    TokenRefreshFailed,
    TokenRefreshRequested,
    WorkflowRun,
)
from shared.crypto import KeyRing
from shared.runtime import ServiceRuntime
from shared.topics_admin import contract_topics, ensure_topics
from tests.simfixtures import sim_account, simulator, simulator_server
from tests.support.kafka import TopicReader, produce
from tests.support.settings import service_settings

__all__ = ["sim_account", "simulator", "simulator_server"]

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")

# Fast loops and polls so lifecycles finish in about a second.
FAST: dict[str, Any] = {
    "poll_intervals_s": [0.2, 0.3, 0.5],
    "loop_interval_s": 0.1,
    "retry_base_s": 0.1,
    "retry_max_s": 0.5,
    "lease_s": 10.0,
    "token_request_retry_s": 30.0,
    "breaker_reset_s": 0.5,
    "reconcile_skew_s": 5.0,
}


@pytest.fixture
def key_text() -> str:
    return KeyRing.generate_key()


@pytest.fixture
def keys(key_text: str) -> KeyRing:
    return KeyRing([key_text])


def plain_run(user_id: str, instance_id: str = "amc-1") -> WorkflowRun:
    """A saved workflow's run for rows written straight to the store (no AMC behind it)."""
    return WorkflowRun(
        user_id=user_id,
        instance_id=instance_id,
        advertiser_id="adv",
        marketplace_id="mkt",
        workflow_id="wf",
        time_window_start=datetime(2024, 1, 1, tzinfo=UTC),
        time_window_end=datetime(2024, 1, 2, tzinfo=UTC),
    )


def registration(account: SimAccount, **changes: Any) -> dict[str, Any]:
    """The body of POST /instances registering the account's instance."""
    return {
        "instance_id": account.instance_id,
        "advertiser_id": account.advertiser_id,
        "marketplace_id": account.marketplace_id,
        "user_id": account.user_id,
        **changes,
    }


def run_for(account: SimAccount, workflow_id: str = "wf-daily", **changes: Any) -> WorkflowRun:
    values: dict[str, Any] = {
        "user_id": account.user_id,
        "instance_id": account.instance_id,
        "advertiser_id": account.advertiser_id,
        "marketplace_id": account.marketplace_id,
        "workflow_id": workflow_id,
        "time_window_start": datetime(2024, 1, 1, tzinfo=UTC),
        "time_window_end": datetime(2024, 1, 8, tzinfo=UTC),
    }
    values.update(changes)
    return WorkflowRun(**values)


def schedule_due(run: WorkflowRun, run_id: UUID | None = None) -> ScheduleDue:
    run_id = run_id or uuid4()
    return ScheduleDue(
        schedule_id=uuid4(),
        run_id=run_id,
        fire_time=datetime.now(UTC),
        origin=Origin(kind=OriginKind.SCHEDULE, id=str(run_id)),
        run=run,
    )


def external(run: WorkflowRun, request_id: str | None = None) -> ExecutionRequested:
    request_id = request_id or f"req-{uuid4().hex[:8]}"
    return ExecutionRequested(
        request_id=request_id,
        origin=Origin(kind=OriginKind.EXTERNAL, id=request_id),
        run=run,
    )


class PollerHarness:
    def __init__(
        self, runtime: ServiceRuntime, bootstrap: str, keys: KeyRing, account: SimAccount
    ) -> None:
        self.runtime = runtime
        self.bootstrap = bootstrap
        self.keys = keys
        self.account = account

    def topic(self, event_type: type[Event]) -> str:
        return self.runtime.topics.name(event_type.topic)

    def topic_name(self, topic: str) -> str:
        """A contract topic as this poller's deployment names it (with its prefix)."""
        return self.runtime.topics.name(topic)

    def completed_count(self, status: str) -> float:
        """amc_poller_executions_completed_total for `status` (0 when never counted)."""
        value = self.runtime.registry.get_sample_value(
            "amc_poller_executions_completed_total", {"status": status}
        )
        return value or 0.0

    async def send(self, *events: Event, headers: dict[str, str] | None = None) -> None:
        """Produce events; `headers` (e.g. a traceparent) go on every record."""
        for event in events:
            await produce(
                self.bootstrap,
                self.topic(type(event)),
                [event.to_bytes()],
                key=event.key(),
                headers=headers,
            )

    async def give_token(self, user_id: str, access_token: str, ttl_s: float = 3600) -> None:
        await self.send(
            TokenRefreshed(
                user_id=user_id,
                access_token_encrypted=self.keys.encrypt(access_token),
                expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
            )
        )

    async def has_token(self, user_id: str) -> bool:
        found = await self.runtime.pool.fetchval(
            "SELECT count(*) FROM tokens WHERE user_id = $1 AND NOT invalid", user_id
        )
        return bool(found)

    async def rows(self) -> list[dict[str, Any]]:
        records = await self.runtime.pool.fetch("SELECT * FROM executions ORDER BY created_at")
        return [dict(r) for r in records]

    async def wait_terminal(self, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        async def done() -> list[dict[str, Any]] | None:
            rows = await self.rows()
            finished = [r for r in rows if r["status"] in TERMINAL]
            return rows if len(finished) >= count else None

        rows: list[dict[str, Any]] = await eventually(
            done, timeout_s, f"{count} terminal execution(s)"
        )
        return rows


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 60.0, what: str = "condition"
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_token_stored(settings: PollerSettings, user_id: str) -> None:
    """Until a poller on `settings` (another process, say) has stored a valid token for the
    user: a request sent later then finds it, whichever topic the poller reads first."""
    conn = await asyncpg.connect(settings.database_url)
    table = f'"{settings.schema_name}".tokens'
    try:

        async def stored() -> bool:
            # The process creates its tables when it starts; until then there is none.
            if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                return False
            found = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE user_id = $1 AND NOT invalid", user_id
            )
            return bool(found)

        await eventually(stored, 60, "the poller to store the user's token")
    finally:
        await conn.close()


async def lwa_token(base_url: str, account: SimAccount) -> str:
    async with LwaClient(base_url, account.client_id, account.client_secret) as lwa:
        tokens = await lwa.refresh(account.refresh_token)
    return tokens.access_token.get_secret_value()


class TokenDesk:
    """Answers token.refresh_requested the way the token service does."""

    def __init__(self, harness: PollerHarness, sim_url: str) -> None:
        self.harness = harness
        self.sim_url = sim_url
        self.refresh_tokens: dict[str, str] = {}
        self.requests: list[TokenRefreshRequested] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TokenDesk:
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _serve(self) -> None:
        account = self.harness.account
        topic = self.harness.topic(TokenRefreshRequested)
        async with TopicReader(self.harness.bootstrap, topic) as reader:
            seen = 0
            while True:
                await reader.poll()
                for record in reader.records[seen:]:
                    request = TokenRefreshRequested.from_bytes(record.value)
                    self.requests.append(request)
                    await self._answer(request, account)
                seen = len(reader.records)

    async def _answer(self, request: TokenRefreshRequested, account: SimAccount) -> None:
        refresh = self.refresh_tokens.get(request.user_id)
        if refresh is None:
            await self.harness.send(
                TokenRefreshFailed(
                    user_id=request.user_id,
                    reauth_required=True,
                    reason="no token registered for this user",
                )
            )
            return
        try:
            async with LwaClient(self.sim_url, account.client_id, account.client_secret) as lwa:
                tokens = await lwa.refresh(refresh)
        except InvalidGrantError as exc:
            await self.harness.send(
                TokenRefreshFailed(user_id=request.user_id, reauth_required=True, reason=str(exc))
            )
            return
        await self.harness.give_token(
            request.user_id, tokens.access_token.get_secret_value(), tokens.expires_in
        )


PollerFactory = Callable[..., Awaitable[PollerHarness]]


@contextlib.asynccontextmanager
async def served_poller(
    settings: PollerSettings, simulator: SimControl, account: SimAccount, keys: KeyRing
) -> AsyncIterator[tuple[PollerHarness, httpx.AsyncClient, str]]:
    """A poller with its management API served over real HTTP, the account's token cached:
    the harness, a client sending the settings' API key, and the base URL."""
    from tests.support.http import serve_app

    runtime = build_runtime(settings)
    app = app_for(runtime)
    await ensure_topics(settings.kafka.bootstrap_servers, contract_topics(runtime.topics))
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    headers = {"Authorization": f"Bearer {key}"}
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, headers=headers) as http:
        harness = PollerHarness(runtime, settings.kafka.bootstrap_servers, keys, account)
        await harness.give_token(account.user_id, await lwa_token(simulator.base_url, account))
        await eventually(lambda: harness.has_token(account.user_id), what="token cached")
        yield harness, http, url


async def completed_events(poller: PollerHarness, count: int) -> list[ExecutionCompleted]:
    topic = poller.topic(ExecutionCompleted)
    async with TopicReader(poller.bootstrap, topic) as reader:
        records = await reader.wait_count(count)
    return [ExecutionCompleted.from_bytes(r.value) for r in records]


async def started(
    make_poller: PollerFactory, simulator: SimControl, account: SimAccount, **overrides: Any
) -> PollerHarness:
    poller = await make_poller(**overrides)
    await poller.give_token(account.user_id, await lwa_token(simulator.base_url, account))
    await eventually(lambda: poller.has_token(account.user_id), what="the token cached")
    return poller


SettingsFactory = Callable[..., PollerSettings]


@pytest.fixture
def poller_settings(
    uid: str,
    database_url: str,
    kafka_bootstrap: str,
    key_text: str,
    simulator: SimControl,
    sim_account: SimAccount,
    tmp_path: Path,
) -> SettingsFactory:
    """Settings of a poller for this test (its own schema and topics) with overrides."""

    def make(**overrides: Any) -> PollerSettings:
        values = {
            **FAST,
            "amc_base_url": simulator.base_url,
            "lwa_client_id": sim_account.client_id,
            "event_encryption_keys": key_text,
            "result_dir": tmp_path / "results",
            **overrides,
        }
        return service_settings(
            PollerSettings,
            service="poller",
            uid=uid,
            database_url=database_url,
            bootstrap=kafka_bootstrap,
            **values,
        )

    return make


@pytest.fixture
async def make_poller(
    poller_settings: SettingsFactory,
    kafka_bootstrap: str,
    keys: KeyRing,
    sim_account: SimAccount,
) -> AsyncIterator[PollerFactory]:
    """Start a poller with the test's overrides; every one started is stopped afterwards."""
    started: list[ServiceRuntime] = []

    async def start(**overrides: Any) -> PollerHarness:
        runtime = build_runtime(poller_settings(**overrides))
        await ensure_topics(kafka_bootstrap, contract_topics(runtime.topics))
        await runtime.start()
        started.append(runtime)
        return PollerHarness(runtime, kafka_bootstrap, keys, sim_account)

    yield start
    for runtime in reversed(started):
        await runtime.stop()
