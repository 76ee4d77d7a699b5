"""Poller and token: the killed replica holds a lease while in an outside call (a POST to
AMC, a refresh at LWA); measured from the kill until the other replica has done that work."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer

from amclocal.simulator import FaultRule, RouteKind, SimControl
from bench.infra import Infra
from bench.takeover.replicas import Pair, log, service_env
from services.token.logic import key_fingerprint
from shared.clients import LwaClient
from shared.contract import (
    Event,
    ExecutionRequested,
    Origin,
    OriginKind,
    TokenRefreshed,
    Topics,
    WorkflowRun,
)
from shared.crypto import KeyRing
from shared.topics_admin import contract_topics, ensure_topics

HANG_MS = 600_000  # an LWA call that outlives any lease

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T]], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def publish(bootstrap: str, topics: Topics, event: Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.name(event.topic), event.to_bytes(), key=event.key())
    finally:
        await producer.stop()


def holder_pid(owner: str) -> int:
    """The pid in a lease owner: poller "host:pid:random", token "host:pid"."""
    parts = owner.split(":")
    return int(parts[1] if len(parts) == 3 else parts[-1])


async def poller(
    env: Infra, sim_url: str, uid: str, kills: int, lease_s: float, log_dir: Path
) -> list[float]:
    """Replica A posts an execution to AMC and is killed before recording AMC's answer
    (the poller's test pause hook holds it there); B must reconcile it."""
    topics = Topics(f"{uid}.")
    await ensure_topics(env.bootstrap, contract_topics(topics))
    key = KeyRing.generate_key()
    async with SimControl(sim_url) as sim:
        account = await sim.provision(
            client_id=f"amzn1.application-oa2-client.{uid}",
            user_id=f"user-{uid}",
            instance_id=f"amc{uid}",
            advertiser_id=f"ENTITY{uid.upper()}",
        )
        async with LwaClient(sim_url, account.client_id, account.client_secret) as lwa:
            access = (await lwa.refresh(account.refresh_token)).access_token.get_secret_value()
        pair = Pair(
            "poller",
            service_env(
                "poller",
                env,
                uid,
                amc_base_url=sim_url,
                result_dir=str(log_dir / f"results-{uid}"),
                poll_intervals_s=json.dumps([0.5, 1.0, 2.0]),
                lease_s=str(lease_s),
                test_pause_after_post_s="600",
            )
            | {"LWA_CLIENT_ID": account.client_id, "EVENT_ENCRYPTION_KEYS": key},
            log_dir,
            f"poller-{uid}",
        )
        schema = f'"{uid}_poller"'
        conn = await asyncpg.connect(env.database_url)
        samples: list[float] = []
        try:
            await pair.start()
            await publish(
                env.bootstrap,
                topics,
                TokenRefreshed(
                    user_id=account.user_id,
                    access_token_encrypted=KeyRing([key]).encrypt(access),
                    expires_at=datetime.now(UTC) + timedelta(hours=2),
                ),
            )

            async def token_cached() -> bool:
                return bool(await conn.fetchval(f"SELECT count(*) FROM {schema}.tokens"))

            await until(token_cached, 60, "the poller to cache the token")
            for n in range(kills):
                request_id = f"req-{uid}-{n}"
                run = WorkflowRun(
                    user_id=account.user_id,
                    instance_id=account.instance_id,
                    advertiser_id=account.advertiser_id,
                    marketplace_id=account.marketplace_id,
                    workflow_id="wf-takeover",
                    time_window_start=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=7 * n),
                    time_window_end=datetime(2024, 1, 8, tzinfo=UTC) + timedelta(days=7 * n),
                )
                origin = Origin(kind=OriginKind.EXTERNAL, id=request_id)
                await publish(
                    env.bootstrap,
                    topics,
                    ExecutionRequested(request_id=request_id, origin=origin, run=run),
                )
                creates = n + 1

                async def posted(
                    request_id: str = request_id, creates: int = creates
                ) -> str | None:
                    # Only this phase's instance: other phases share the simulator.
                    accepted = [
                        r
                        for r in await sim.requests(kind=RouteKind.CREATE)
                        if r.status == 200 and r.instance_id == account.instance_id
                    ]
                    if len(accepted) < creates:
                        return None
                    owner: str | None = await conn.fetchval(
                        f"""SELECT lease_owner FROM {schema}.executions
                            WHERE origin_id = $1 AND status = 'SUBMITTING'""",
                        request_id,
                    )
                    return owner

                owner = await until(posted, 60, "a replica to post to AMC")
                assert owner is not None
                pair.kill(pair.by_pid(holder_pid(owner)))
                killed = time.monotonic()

                async def recorded(request_id: str = request_id) -> bool:
                    return bool(
                        await conn.fetchval(
                            f"""SELECT amc_execution_id IS NOT NULL FROM {schema}.executions
                                WHERE origin_id = $1""",
                            request_id,
                        )
                    )

                await until(recorded, 4 * lease_s + 60, "the other replica to take over")
                samples.append(time.monotonic() - killed)
                log(f"poller lease {lease_s:g}s: taken over after {samples[-1]:.2f}s")
                await pair.start()
        finally:
            await conn.close()
            pair.stop()
    return samples


async def token(
    env: Infra, sim_url: str, uid: str, kills: int, lease_s: float, log_dir: Path
) -> list[float]:
    """Replica A claims a due token and hangs in its LWA call; B must refresh it."""
    topics = Topics(f"{uid}.")
    await ensure_topics(env.bootstrap, contract_topics(topics))
    storage_key = KeyRing.generate_key()
    async with SimControl(sim_url) as sim:
        account = await sim.provision(
            client_id=f"amzn1.application-oa2-client.{uid}",
            user_id=f"user-{uid}",
            instance_id=f"amc{uid}t",
        )
        pair = Pair(
            "token",
            service_env(
                "token",
                env,
                uid,
                lwa_base_url=sim_url,
                lwa_client_id=account.client_id,
                lwa_client_secret=account.client_secret,
                lwa_timeout_s=str(HANG_MS / 1000 + 60),
                encryption_keys=storage_key,
                event_encryption_keys=KeyRing.generate_key(),
                refresh_interval_s="0.5",
                claim_lease_s=str(lease_s),
            ),
            log_dir,
            f"token-{uid}",
        )
        schema = f'"{uid}_token"'
        conn = await asyncpg.connect(env.database_url)
        samples: list[float] = []
        try:
            await pair.start()
            await conn.execute(
                f"""INSERT INTO {schema}.tokens (user_id, refresh_token_enc, expires_at, key_fp,
                                                 last_refreshed_at)
                    VALUES ($1, $2, now() + interval '2 hours', $3, now())""",
                account.user_id,
                KeyRing([storage_key]).encrypt(account.refresh_token),
                key_fingerprint(storage_key),
            )
            for _ in range(kills):
                await sim.add_fault(FaultRule(kinds=[RouteKind.TOKEN], latency_ms=HANG_MS))
                await conn.execute(
                    f"UPDATE {schema}.tokens SET expires_at = now() + interval '1 minute'"
                )

                async def claimed() -> str | None:
                    owner: str | None = await conn.fetchval(
                        f"SELECT claimed_by FROM {schema}.tokens WHERE claim_expires_at > now()"
                    )
                    return owner

                owner = await until(claimed, 60, "a replica to claim the token")
                assert owner is not None
                pair.kill(pair.by_pid(holder_pid(owner)))
                killed = time.monotonic()
                await sim.clear_faults()

                async def refreshed() -> bool:
                    return bool(
                        await conn.fetchval(
                            f"""SELECT expires_at > now() + interval '30 minutes'
                                FROM {schema}.tokens"""
                        )
                    )

                await until(refreshed, 4 * lease_s + 60, "the other replica to take over")
                samples.append(time.monotonic() - killed)
                log(f"token lease {lease_s:g}s: taken over after {samples[-1]:.2f}s")
                await pair.start()
        finally:
            await conn.close()
            pair.stop()
    return samples
