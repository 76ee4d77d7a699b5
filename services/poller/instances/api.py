"""Management API: /instances, the registry of AMC instances runs may name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from services.poller import claims, flow
from services.poller.exchange.gateway import CircuitOpenError
from services.poller.instances import registry
from services.poller.instances.registry import Instance, Region
from services.poller.runtime import PollerRuntime, RuntimeDep
from shared.clients import ApiError

router = APIRouter(prefix="/instances", tags=["instances"])

_ID = Field(min_length=1, max_length=256)


class InstanceChange(BaseModel):
    """What `update` may change; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    advertiser_id: str | None = Field(default=None, min_length=1, max_length=256)
    marketplace_id: str | None = Field(default=None, min_length=1, max_length=256)
    region: Region | None = Field(default=None, description="NA, EU or FE: picks the AMC API host")
    sandbox: bool | None = Field(
        default=None, description="A sandbox instance: its runs ask for synthetic data"
    )
    user_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="Whose token manages workflows"
    )
    name: str | None = Field(default=None, max_length=256)
    max_running: int | None = Field(
        default=None, ge=1, le=200, description="Running executions at once (default: global)"
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, le=100, description="AMC requests a second (default: global)"
    )
    max_daily_executions: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Executions created per UTC day (default: global; 0: no cap), for an "
        "instance whose cap Amazon raised",
    )


class InstanceAdd(InstanceChange):
    instance_id: str = _ID
    advertiser_id: str = _ID
    marketplace_id: str = _ID
    region: Region = "NA"
    sandbox: bool = False


@dataclass(frozen=True)
class InstanceView(Instance):
    """An instance as the API shows it: the registry's row, field for field (one list of
    fields, so the two cannot drift apart)."""

    @classmethod
    def of_instance(cls, instance: Instance) -> InstanceView:
        return cls(**vars(instance))


class TodayView(BaseModel):
    """The instance's UTC day so far against AMC's daily cap on executions."""

    daily_cap: int = Field(description="Executions per UTC day (0: no cap)")
    used: int = Field(description="Submissions to AMC since 00:00 UTC, refused ones included")
    used_by_kind: dict[str, int] = Field(description="used, per origin kind")
    remaining: int | None = Field(description="Left for today; null without a cap")
    waiting_for_tomorrow: int = Field(
        description="QUEUED runs held until the next UTC day (the cap, a collection's share, "
        "or AMC's own Retry-After)"
    )
    waiting_by_kind: dict[str, int] = Field(description="waiting_for_tomorrow, per origin kind")


@dataclass(frozen=True)
class InstanceDetail(InstanceView):
    today: TodayView


class InstanceList(BaseModel):
    instances: list[InstanceView]


class Discovered(BaseModel):
    instance_id: str
    name: str
    account_id: str
    account_name: str
    marketplace_id: str
    region: Region
    sandbox: bool
    registered: bool


class Discovery(BaseModel):
    user_id: str
    instances: list[Discovered]
    newly_registered: list[str]


class DiscoveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    user_id: str = _ID
    # "register" on the wire; BaseModel has a method of that name.
    register_new: bool = Field(
        default=False, alias="register", description="Register every instance not yet known"
    )


def _region(api_endpoint: str | None) -> Region:
    """The region of an instance's API host (Amazon Ads API hosts: -eu, -fe, else NA)."""
    host = urlsplit(api_endpoint or "").hostname or ""
    if "-eu." in host:
        return "EU"
    if "-fe." in host:
        return "FE"
    return "NA"


@router.post("/discover", response_model=Discovery)
async def discover(runtime: RuntimeDep, body: DiscoveryRequest) -> Any:
    """The AMC accounts and instances the user's token can see (AMC Administration API);
    with `register`, the unknown ones join the registry, managed by that user."""
    context = await runtime.context()
    token = await context.tokens.token(body.user_id, flow.now())
    if token is None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await flow.ask_for_token(conn, context.outbox, body.user_id, "instance discovery")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"no valid access token for user {body.user_id} yet; one was asked for: try again "
            "in a few seconds",
            headers={"Retry-After": "5"},
        )
    try:
        seen = await context.amc.discover(token)
    except (ApiError, CircuitOpenError) as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"AMC: {exc}") from None
    found: list[Discovered] = []
    added: list[str] = []
    async with runtime.pool.acquire() as conn, conn.transaction():
        for account, instances in seen:
            for instance in instances:
                known = await registry.get_instance(conn, instance.instance_id) is not None
                item = Discovered(
                    instance_id=instance.instance_id,
                    name=instance.name,
                    account_id=account.account_id,
                    account_name=account.name,
                    marketplace_id=account.marketplace_id,
                    region=_region(instance.api_endpoint),
                    # instanceType is in Amazon's sample answers, not in its OpenAPI document.
                    sandbox=(instance.instance_type or "").upper() == "SANDBOX",
                    registered=known,
                )
                if body.register_new and not known:
                    await registry.add_instance(
                        conn,
                        item.instance_id,
                        {
                            "advertiser_id": item.account_id,
                            "marketplace_id": item.marketplace_id,
                            "region": item.region,
                            "sandbox": item.sandbox,
                            "user_id": body.user_id,
                            "name": item.name or None,
                        },
                    )
                    item.registered = True
                    added.append(item.instance_id)
                found.append(item)
    for instance_id in added:
        await _forget(runtime, instance_id)
    return Discovery(user_id=body.user_id, instances=found, newly_registered=added)


async def _forget(runtime: PollerRuntime, instance_id: str) -> None:
    """This replica's loops see the change at once; others within the cache's 10 s."""
    (await runtime.context()).instances.forget(instance_id)


@router.get("", response_model=InstanceList)
async def list_instances(runtime: RuntimeDep) -> Any:
    async with runtime.pool.acquire() as conn:
        found = await registry.list_instances(conn)
    return InstanceList(instances=[InstanceView.of_instance(i) for i in found])


@router.post("", response_model=InstanceView, status_code=status.HTTP_201_CREATED)
async def add_instance(runtime: RuntimeDep, body: InstanceAdd) -> Any:
    fields = body.model_dump(exclude={"instance_id"}, exclude_none=True)
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await registry.add_instance(conn, body.instance_id, fields):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"instance {body.instance_id} is registered already: change it with update",
            )
        added = await registry.get_instance(conn, body.instance_id)
    assert added is not None
    await _forget(runtime, body.instance_id)
    return InstanceView.of_instance(added)


@router.get("/{instance_id}", response_model=InstanceDetail)
async def show_instance(runtime: RuntimeDep, instance_id: str) -> Any:
    async with runtime.pool.acquire() as conn:
        found = await registry.get_instance(conn, instance_id)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered"
            )
        today = await claims.instance_today(conn, instance_id)
    settings = runtime.poller_settings
    cap = (
        found.max_daily_executions
        if found.max_daily_executions is not None
        else settings.daily_executions_per_instance
    )
    return InstanceDetail(
        **vars(found),
        today=TodayView(
            daily_cap=cap,
            used=today.used,
            used_by_kind=today.used_by_kind,
            remaining=max(cap - today.used, 0) if cap else None,
            waiting_for_tomorrow=today.waiting_for_tomorrow,
            waiting_by_kind=today.waiting_by_kind,
        ),
    )


@router.patch("/{instance_id}", response_model=InstanceView)
async def update_instance(runtime: RuntimeDep, instance_id: str, body: InstanceChange) -> Any:
    fields = body.model_dump(exclude_unset=True)
    cleared = [name for name, value in fields.items() if value is None]
    required = {"advertiser_id", "marketplace_id", "region", "sandbox"} & set(cleared)
    if required:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{', '.join(sorted(required))}: cannot be null"
        )
    async with runtime.pool.acquire() as conn, conn.transaction():
        found = await registry.update_instance(conn, instance_id, fields)
    await _forget(runtime, instance_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
    return InstanceView.of_instance(found)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_instance(runtime: RuntimeDep, instance_id: str) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        removed = await registry.remove_instance(conn, instance_id)
    await _forget(runtime, instance_id)
    if not removed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
