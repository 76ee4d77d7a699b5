"""Management API: /instances, the registry of AMC instances runs may name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.poller import registry
from services.poller.registry import Instance, Region
from shared.http import runtime_of

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


class InstanceAdd(InstanceChange):
    instance_id: str = _ID
    advertiser_id: str = _ID
    marketplace_id: str = _ID
    region: Region = "NA"
    sandbox: bool = False


class InstanceView(BaseModel):
    instance_id: str
    advertiser_id: str
    marketplace_id: str
    region: Region
    sandbox: bool
    user_id: str | None
    name: str | None
    max_running: int | None
    requests_per_second: float | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, instance: Instance) -> InstanceView:
        return cls(**vars(instance))


class InstanceList(BaseModel):
    instances: list[InstanceView]


async def _forget(request: Request, instance_id: str) -> None:
    """This replica's loops see the change at once; others within the cache's 10 s."""
    context = getattr(request.app.state, "poller_context", None)
    if context is not None:
        (await context()).instances.forget(instance_id)


@router.get("", response_model=InstanceList)
async def list_instances(request: Request) -> Any:
    async with runtime_of(request).pool.acquire() as conn:
        found = await registry.list_instances(conn)
    return InstanceList(instances=[InstanceView.of(i) for i in found])


@router.post("", response_model=InstanceView, status_code=status.HTTP_201_CREATED)
async def add_instance(request: Request, body: InstanceAdd) -> Any:
    fields = body.model_dump(exclude={"instance_id"}, exclude_none=True)
    async with runtime_of(request).pool.acquire() as conn, conn.transaction():
        if not await registry.add_instance(conn, body.instance_id, fields):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"instance {body.instance_id} is registered already: change it with update",
            )
        added = await registry.get_instance(conn, body.instance_id)
    assert added is not None
    await _forget(request, body.instance_id)
    return InstanceView.of(added)


@router.get("/{instance_id}", response_model=InstanceView)
async def show_instance(request: Request, instance_id: str) -> Any:
    async with runtime_of(request).pool.acquire() as conn:
        found = await registry.get_instance(conn, instance_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
    return InstanceView.of(found)


@router.patch("/{instance_id}", response_model=InstanceView)
async def update_instance(request: Request, instance_id: str, body: InstanceChange) -> Any:
    fields = body.model_dump(exclude_unset=True)
    cleared = [name for name, value in fields.items() if value is None]
    required = {"advertiser_id", "marketplace_id", "region", "sandbox"} & set(cleared)
    if required:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, f"{', '.join(sorted(required))}: cannot be null"
        )
    async with runtime_of(request).pool.acquire() as conn, conn.transaction():
        found = await registry.update_instance(conn, instance_id, fields)
    await _forget(request, instance_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
    return InstanceView.of(found)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_instance(request: Request, instance_id: str) -> None:
    async with runtime_of(request).pool.acquire() as conn, conn.transaction():
        removed = await registry.remove_instance(conn, instance_id)
    await _forget(request, instance_id)
    if not removed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
