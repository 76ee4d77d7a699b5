"""Instances: the poller's registry of AMC instances (read-only here; amcctl changes it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console.present import limits_text
from services.console.web import ConsoleDep, PrincipalDep, render

router = APIRouter(prefix="/instances")


@router.get("", response_class=HTMLResponse)
async def list_instances(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    # The registry holds a deployment's handful of instances: the poller lists them whole.
    items = await console.backends.instances()
    return render(
        request, console, "instances.html", principal, items=items, limits_text=limits_text
    )


@router.get("/{instance_id}", response_class=HTMLResponse)
async def show_instance(
    instance_id: str, request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    i = await console.backends.instance(instance_id)
    return render(request, console, "instance.html", principal, i=i, limits=limits_text(i))
