"""What the soak asks of the system: accounts, minute schedules, collections and external
requests (each sent twice), all through the services' own APIs and topics."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from amclocal.simulator import SimControl
from amclocal.stack import ServiceStack
from bench.soak.config import Secrets, SoakConfig
from shared.contract import ExecutionRequested, Origin, OriginKind, WorkflowRun

log = logging.getLogger("soak")

ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata")
MARKETPLACE = "ATVPDKIKX0DER"


def user_id(n: int) -> str:
    """The soak's n-th user (one per AMC instance)."""
    return f"soak-user-{n:03d}"


@dataclass(frozen=True)
class Account:
    user_id: str
    refresh_token: str
    instance_id: str
    advertiser_id: str

    def run_fields(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "instance_id": self.instance_id,
            "advertiser_id": self.advertiser_id,
            "marketplace_id": MARKETPLACE,
        }


@dataclass
class ScheduleRef:
    id: str
    index: int
    instance_id: str
    created_at: datetime
    paused_at: datetime | None = None


@dataclass
class CollectionRef:
    id: str
    index: int
    instance_id: str


@dataclass
class ExternalRef:
    request_id: str
    index: int
    instance_id: str
    sends: list[str] = field(default_factory=list)


@dataclass
class Workload:
    accounts: list[Account] = field(default_factory=list)
    schedules: list[ScheduleRef] = field(default_factory=list)
    collections: list[CollectionRef] = field(default_factory=list)
    external: list[ExternalRef] = field(default_factory=list)

    @property
    def instance_ids(self) -> set[str]:
        return {a.instance_id for a in self.accounts}


class Api:
    """Authorised JSON calls to a service. A replica may be down (the soak kills them), so a
    call tries each replica in turn until one answers, for up to `patience_s`."""

    def __init__(self, stack: ServiceStack, http: httpx.AsyncClient, patience_s: float = 120):
        self.stack = stack
        self.http = http
        self.patience_s = patience_s
        self.headers = {"Authorization": f"Bearer {stack.keys['API_KEY']}"}

    async def call(self, service: str, method: str, path: str, body: Any = None) -> Any:
        deadline = time.monotonic() + self.patience_s
        last = ""
        while time.monotonic() < deadline:
            for name in self.stack.replica_names(service):
                try:
                    response = await self.http.request(
                        method,
                        self.stack.url(name) + path,
                        json=body,
                        headers=self.headers,
                        timeout=30,
                    )
                except httpx.HTTPError as exc:
                    last = f"{name}: {exc!r}"
                    continue
                if response.status_code >= 500:
                    last = f"{name}: {response.status_code} {response.text[:200]}"
                    continue
                if response.status_code >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
                return response.json() if response.content else None
            await asyncio.sleep(1.0)
        raise RuntimeError(f"{method} {path}: no replica of {service} answered ({last})")


async def provision(
    cfg: SoakConfig, sim: SimControl, api: Api, secrets_: Secrets, rng: random.Random
) -> list[Account]:
    """One user per AMC instance, known to the simulated LWA and to the token service."""
    # Short AMC runs keep a minute schedule's runs from piling up; access tokens that live
    # 12 minutes make the token service refresh every user during the soak (with
    # TOKEN_REFRESH_BUFFER_S=480 each token is refreshed about every 4 minutes).
    await sim.configure(
        seed=cfg.seed,
        pending_seconds=1.0,
        running_seconds=5.0,
        result_rows=20,
        access_token_ttl_seconds=720.0,
    )
    accounts = []
    for n in range(cfg.instances):
        account = Account(
            user_id=user_id(n),
            refresh_token="Atzr|" + secrets.token_urlsafe(32),
            instance_id=f"amcsoak{n:03d}",
            advertiser_id=f"ENTITYSOAK{n:03d}",
        )
        secrets_.add("refresh_token", account.refresh_token)
        await sim.register_user(account.user_id, account.refresh_token)
        await sim.register_instance(account.instance_id, account.advertiser_id, MARKETPLACE)
        await api.call(
            "token", "PUT", f"/tokens/{account.user_id}", {"refresh_token": account.refresh_token}
        )
        accounts.append(account)
    rng.shuffle(accounts)
    return accounts


async def create_schedules(cfg: SoakConfig, api: Api, accounts: list[Account]) -> list[ScheduleRef]:
    refs = []
    for i in range(cfg.schedules):
        account = accounts[i % len(accounts)]
        body = account.run_fields() | {
            "name": f"soak schedule {i}",
            "workflow_id": f"soak-sched-{i:03d}",
            "parameters": {"schedule": i},
            "cron": "* * * * *",
            "timezone": ZONES[i % len(ZONES)],
            "catch_up_policy": cfg.catch_up_policy,
            "overlap_policy": cfg.overlap_policy,
        }
        created = await api.call("scheduler", "POST", "/schedules", body)
        refs.append(
            ScheduleRef(
                id=created["id"],
                index=i,
                instance_id=account.instance_id,
                created_at=datetime.fromisoformat(created["created_at"]),
            )
        )
    return refs


async def create_collections(
    cfg: SoakConfig, api: Api, accounts: list[Account]
) -> list[CollectionRef]:
    refs = []
    # The collector refuses end dates within its data lag (2 days by default).
    end = datetime.now(UTC).date() - timedelta(days=3)
    for i in range(cfg.collections):
        account = accounts[(i * 7 + 3) % len(accounts)]
        last = end - timedelta(days=7 * i)
        start = last - timedelta(days=7 * cfg.collection_weeks - 1)
        body = account.run_fields() | {
            "workflow_id": f"soak-coll-{i:03d}",
            "parameters": {"collection": i},
            "start_date": start.isoformat(),
            "end_date": last.isoformat(),
            "max_weeks_in_flight": 2,
        }
        created = await api.call("collector", "POST", "/collections", body)
        refs.append(CollectionRef(id=created["id"], index=i, instance_id=account.instance_id))
    return refs


def external_requests(cfg: SoakConfig, accounts: list[Account]) -> list[ExternalRef]:
    return [
        ExternalRef(
            request_id=f"soak-ext-{i:03d}-{uuid.uuid4().hex[:8]}",
            index=i,
            instance_id=accounts[(i * 5 + 1) % len(accounts)].instance_id,
        )
        for i in range(cfg.external)
    ]


def external_event(ref: ExternalRef, account: Account) -> ExecutionRequested:
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(weeks=ref.index)
    return ExecutionRequested(
        request_id=ref.request_id,
        origin=Origin(kind=OriginKind.EXTERNAL, id=ref.request_id),
        run=WorkflowRun.model_validate(
            account.run_fields()
            | {
                "workflow_id": f"soak-ext-{ref.index:03d}",
                "parameters": {"request": ref.index},
                "time_window_start": start,
                "time_window_end": start + timedelta(days=7),
            }
        ),
    )


async def send_external(
    cfg: SoakConfig,
    bootstrap: str,
    topic: str,
    workload: Workload,
    rng: random.Random,
    started: float,
) -> None:
    """Each request goes out twice with the same request_id: the copy follows the first
    after 0-20 s, so some copies arrive while the first is still being handled. Sends are
    spread over the first 80 % of the fault phase (some meet the broker pause: they wait)."""
    accounts = {a.instance_id: a for a in workload.accounts}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sends = []
        for ref in workload.external:
            at = started + cfg.phase_s * (0.05 + 0.75 * ref.index / max(len(workload.external), 1))
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            event = external_event(ref, accounts[ref.instance_id])
            sends.append(asyncio.create_task(_twice(producer, topic, event, ref, rng)))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _twice(
    producer: AIOKafkaProducer,
    topic: str,
    event: ExecutionRequested,
    ref: ExternalRef,
    rng: random.Random,
) -> None:
    for copy in range(2):
        if copy:
            await asyncio.sleep(rng.uniform(0.0, 20.0))
        for _ in range(10):
            try:
                await producer.send_and_wait(topic, event.to_bytes(), key=event.key())
                break
            except Exception as exc:  # a paused broker times the send out: try again
                log.warning("sending %s failed (%r); again", ref.request_id, exc)
                await asyncio.sleep(2.0)
        else:
            raise RuntimeError(f"could not send {ref.request_id}")
        ref.sends.append(datetime.now(UTC).isoformat(timespec="seconds"))


async def pause_schedules(api: Api, schedules: list[ScheduleRef]) -> None:
    """Pause every schedule half way through a minute: each fire time up to the last full
    minute must have run, and none after it may run."""
    now = datetime.now(UTC)
    half = now.replace(second=30, microsecond=0)
    if half <= now:
        half += timedelta(minutes=1)
    log.info("pausing the schedules at %s", half.time().isoformat(timespec="seconds"))
    await asyncio.sleep((half - now).total_seconds())
    for ref in schedules:
        paused = await api.call(
            "scheduler", "POST", f"/schedules/{ref.id}/pause", {"note": "soak: phase over"}
        )
        ref.paused_at = datetime.fromisoformat(paused["paused_at"])
