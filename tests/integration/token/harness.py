"""A running token service against the real broker, database and LWA simulator, with a guard
that no token ever shows in clear text in logs, events or API answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from amclocal.simulator import RouteKind, SimControl
from services.token import store
from services.token.runtime import TokenRuntime
from services.token.settings import TokenSettings
from shared.contract import TokenRefreshed, TokenRefreshFailed, TokenRefreshRequested
from shared.crypto import KeyRing
from tests.support.kafka import Record, TopicReader, produce

API_KEY = "test-api-key"
CLIENT_ID = "amzn1.application-oa2-client.tokentest"
CLIENT_SECRET = "sim-client-secret-0123456789"
SEEDED_ACCESS = "Atza|seeded-old-access"
TOKEN_TOPICS = (TokenRefreshRequested.topic, TokenRefreshed.topic, TokenRefreshFailed.topic)


def find_leaks(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[str]:
    """Where any secret occurs: 'place: secret-prefix...' for each hit."""
    wanted = [s for s in set(secrets) if s]
    return [f"{where}: {s[:9]}..." for where, text in texts for s in wanted if s in text]


@dataclass
class TokenHarness:
    service: TokenRuntime
    settings: TokenSettings
    sim: SimControl
    base_url: str
    http: httpx.AsyncClient
    bootstrap: str
    storage_keys: list[str]
    event_key: str
    secrets: set[str] = field(default_factory=set)
    bodies: list[tuple[str, str]] = field(default_factory=list)

    # --- API -------------------------------------------------------------------------------

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {API_KEY}"})
        response = await self.http.request(method, self.base_url + path, headers=headers, **kwargs)
        self.bodies.append((f"{method} {path} -> {response.status_code}", response.text))
        return response

    # --- set-up ----------------------------------------------------------------------------

    async def sim_user(self, user_id: str) -> str:
        """A user LWA knows; returns its refresh token."""
        refresh_token = f"Atzr|reg-{user_id}-{datetime.now(UTC).timestamp()}"
        await self.sim.register_user(user_id, refresh_token)
        self.secrets.add(refresh_token)
        return refresh_token

    async def seed(
        self,
        user_id: str,
        refresh_token: str,
        *,
        expires_in: timedelta | None = timedelta(minutes=2),
        access_token: str | None = SEEDED_ACCESS,
        keys: list[str] | None = None,
    ) -> None:
        """Store a user's grant directly (as if it had been refreshed earlier)."""
        ring = KeyRing(keys) if keys else self.service.vault.storage
        fp = self.service.vault.current_fp if not keys else "seeded"
        self.secrets.add(refresh_token)
        if access_token:
            self.secrets.add(access_token)
        async with self.pool.acquire() as conn:
            await store.store_grant(
                conn,
                user_id,
                refresh_token_enc=ring.encrypt(refresh_token),
                access_token_enc=ring.encrypt(access_token) if access_token else None,
                expires_at=datetime.now(UTC) + expires_in if expires_in is not None else None,
                key_fp=fp,
            )
            await conn.execute(
                """UPDATE tokens SET refresh_requested_at = NULL,
                          last_refreshed_at = now() - interval '1 hour'
                   WHERE user_id = $1""",
                user_id,
            )

    @property
    def pool(self) -> Any:
        return self.service.pool

    def topic(self, logical: str) -> str:
        return self.service.topics.name(logical)

    async def request_refresh(
        self,
        user_id: str,
        times: int = 1,
        headers: dict[str, str] | None = None,
        refused_fp: str | None = None,
    ) -> None:
        events = [
            TokenRefreshRequested(user_id=user_id, reason="test", refused_token_fp=refused_fp)
            for _ in range(times)
        ]
        await produce(
            self.bootstrap,
            self.topic(TokenRefreshRequested.topic),
            [e.to_bytes() for e in events],
            key=user_id.encode(),
            headers=headers,
        )

    async def lwa_calls(self) -> int:
        return len(await self.sim.requests(kind=RouteKind.TOKEN))

    async def row(self, user_id: str) -> store.TokenRow:
        async with self.pool.acquire() as conn:
            row = await store.get_token(conn, user_id)
        assert row is not None, f"no row for {user_id}"
        return row

    def reader(self) -> TopicReader:
        return TopicReader(
            self.bootstrap, self.topic(TokenRefreshed.topic), self.topic(TokenRefreshFailed.topic)
        )

    def open_event(self, record: Record) -> str:
        """The access token inside a token.refreshed, with the poller's key."""
        event = TokenRefreshed.model_validate(record.json())
        return KeyRing([self.event_key]).decrypt(event.access_token_encrypted)

    # --- the leak guard --------------------------------------------------------------------

    async def all_texts(self, caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
        await self.outbox_drained()
        topics = [self.topic(t) for t in TOKEN_TOPICS]
        topics += [f"{t}.dlq" for t in topics]
        async with TopicReader(self.bootstrap, *topics) as reader:
            quiet = 0
            while quiet < 3:
                before = len(reader.records)
                await reader.poll()
                quiet = quiet + 1 if len(reader.records) == before else 0
            records = reader.records
        texts: list[tuple[str, str]] = [
            (f"event {r.topic}@{r.offset}", r.value.decode(errors="replace")) for r in records
        ]
        texts += [(f"event key {r.topic}@{r.offset}", (r.key or b"").decode()) for r in records]
        texts += [(f"header {r.topic}@{r.offset}", repr(r.headers)) for r in records]
        # caplog.records holds the current phase only; a scenario logs in all three.
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        logged: list[logging.LogRecord] = [
            *caplog.get_records("setup"),
            *caplog.get_records("call"),
            *caplog.records,
        ]
        texts += [(f"log {log.name}", formatter.format(log)) for log in logged]
        texts += self.bodies
        return texts

    async def stored_secrets(self) -> set[str]:
        ring = self.service.vault.storage
        found: set[str] = set()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT refresh_token_enc, access_token_enc FROM tokens")
        for row in rows:
            for value in (row["refresh_token_enc"], row["access_token_enc"]):
                if value is None:
                    continue
                try:
                    found.add(ring.decrypt(value))
                except Exception:  # noqa: S112 - rows sealed with a foreign key on purpose
                    continue
        return found

    async def outbox_drained(self, timeout_s: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"):
            assert asyncio.get_running_loop().time() < deadline, "outbox not drained"
            await asyncio.sleep(0.05)


async def wait_until(condition: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def refreshed_for(records: list[Record], topic: str, user_id: str) -> list[Record]:
    return [r for r in records if r.topic == topic and r.key == user_id.encode()]


def settings_for(
    uid: str, database_url: str, bootstrap: str, sim_url: str, **overrides: Any
) -> TokenSettings:
    from tests.support.settings import service_settings

    values: dict[str, Any] = {
        "api_key": API_KEY,
        "lwa_base_url": sim_url,
        # The simulator's stand-ins for LWA's EU and FE token hosts (amclocal lwa_routes).
        "lwa_base_url_eu": sim_url + "/lwa/eu",
        "lwa_base_url_fe": sim_url + "/lwa/fe",
        "lwa_client_id": CLIENT_ID,
        "lwa_client_secret": CLIENT_SECRET,
        "lwa_timeout_s": 2.0,
        "encryption_keys": KeyRing.generate_key(),
        "event_encryption_keys": KeyRing.generate_key(),
        "refresh_initial_delay_s": 3600.0,  # tests run cycles themselves
        "refresh_interval_s": 3600.0,
        "refresh_buffer_s": 600.0,
        "concurrency": 8,
        "on_demand_poll_s": 0.2,
        "retry_base_s": 0.05,
        "retry_max_s": 0.2,
        "failure_threshold": 3,
    }
    values.update(overrides)
    return service_settings(
        TokenSettings,
        service="token",
        uid=uid,
        database_url=database_url,
        bootstrap=bootstrap,
        **values,
    )
