"""Management API: /workflows, saved workflows at AMC and the versions pushed through us.

Every AMC call goes through the poller's gateway (rate slot, breaker, metrics) with the
access token of the instance's managing user (`instances.user_id`).
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.poller import flow, registry
from services.poller.gateway import CircuitOpenError
from services.poller.registry import WorkflowVersion
from services.poller.tokens import Token
from services.poller.worker import Context
from shared.clients import AmcAccount, ApiError, ClientRequestError, SavedWorkflow
from shared.http import runtime_of

router = APIRouter(prefix="/workflows", tags=["workflows"])


class InputParameter(BaseModel):
    """One of AMC's inputParameters: name, dataType and, when it has one, a default."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dataType: JsonValue = Field(description="STRING, INTEGER, ... or AMC's object form")


class WorkflowPush(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql_query: str = Field(min_length=1, max_length=200_000)
    input_parameters: list[InputParameter] = Field(default_factory=list, max_length=100)
    author: str = Field(min_length=1, max_length=256, description="Who pushes this version")


class VersionView(BaseModel):
    version: int
    sha256: str
    author: str
    pushed_at: datetime
    sql_query: str
    input_parameters: list[dict[str, Any]]

    @classmethod
    def of(cls, v: WorkflowVersion) -> VersionView:
        return cls(
            version=v.version,
            sha256=v.sha256,
            author=v.author,
            pushed_at=v.pushed_at,
            sql_query=v.sql_query,
            input_parameters=v.input_parameters,
        )


class WorkflowView(BaseModel):
    instance_id: str
    workflow_id: str
    at_amc: dict[str, Any] | None = Field(description="The definition AMC holds, if any")
    versions: list[VersionView]


class PushPlan(BaseModel):
    action: Literal["create", "update", "unchanged"]
    diff: str = Field(description="Unified diff of AMC's definition to the pushed one")


class PushResult(PushPlan):
    version: int
    new_version: bool


class WorkflowList(BaseModel):
    instance_id: str
    workflows: list[WorkflowView]


async def _context(request: Request) -> Context:
    context: Context = await request.app.state.poller_context()
    return context


async def _managed(request: Request, instance_id: str) -> tuple[Context, AmcAccount, Token]:
    """The gateway, the instance's account and its managing user's access token."""
    ctx = await _context(request)
    instance = await ctx.instances.get(instance_id, fresh=True)
    if instance is None or instance.user_id is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"instance {instance_id} is not registered with a managing user: "
            f"amcctl instances add {instance_id} ... --user USER (or update --user)",
        )
    account = ctx.instances.account_of(instance)
    token = await ctx.tokens.token(instance.user_id, flow.now())
    if token is None:
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            await flow.ask_for_token(
                conn, ctx.outbox, instance.user_id, "workflow management needs a token"
            )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"no valid access token for user {instance.user_id} yet; one was asked for: "
            "try again in a few seconds",
            headers={"Retry-After": "5"},
        )
    return ctx, account, token


def _amc_failed(exc: ApiError | CircuitOpenError) -> HTTPException:
    if isinstance(exc, ClientRequestError):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"AMC refused: {exc}")
    return HTTPException(status.HTTP_502_BAD_GATEWAY, f"AMC: {exc}")


async def _at_amc(
    ctx: Context, token: Token, account: AmcAccount, workflow_id: str
) -> SavedWorkflow | None:
    try:
        return await ctx.amc.get_workflow(token, account, workflow_id)
    except ClientRequestError as exc:
        if exc.status == 404:
            return None
        raise _amc_failed(exc) from None
    except (ApiError, CircuitOpenError) as exc:
        raise _amc_failed(exc) from None


def _text(workflow: SavedWorkflow | None) -> list[str]:
    if workflow is None:
        return []
    lines = workflow.sql_query.splitlines(keepends=True)
    for parameter in workflow.input_parameters:
        lines.append(f"-- @param {parameter}\n")
    return lines


def _plan(current: SavedWorkflow | None, wanted: SavedWorkflow) -> PushPlan:
    diff = "".join(
        difflib.unified_diff(_text(current), _text(wanted), "at AMC", "pushed", lineterm="\n")
    )
    if current is None:
        return PushPlan(action="create", diff=diff)
    same = (current.sql_query, current.input_parameters) == (
        wanted.sql_query,
        wanted.input_parameters,
    )
    return PushPlan(action="unchanged" if same else "update", diff=diff)


def _wanted(workflow_id: str, body: WorkflowPush) -> SavedWorkflow:
    parameters = [p.model_dump(mode="json") for p in body.input_parameters]
    return SavedWorkflow(workflow_id, body.sql_query, parameters)


@router.post("/{instance_id}/{workflow_id}/plan", response_model=PushPlan)
async def plan_push(
    request: Request, instance_id: str, workflow_id: str, body: WorkflowPush
) -> Any:
    """What a push would do (create, update or nothing), with the difference: sends nothing."""
    ctx, account, token = await _managed(request, instance_id)
    return _plan(await _at_amc(ctx, token, account, workflow_id), _wanted(workflow_id, body))


@router.put("/{instance_id}/{workflow_id}", response_model=PushResult)
async def push(request: Request, instance_id: str, workflow_id: str, body: WorkflowPush) -> Any:
    """Create or update the workflow at AMC, and keep the pushed definition as a version
    (the same definition as the latest version makes none)."""
    ctx, account, token = await _managed(request, instance_id)
    wanted = _wanted(workflow_id, body)
    plan = _plan(await _at_amc(ctx, token, account, workflow_id), wanted)
    if plan.action != "unchanged":
        try:
            await ctx.amc.push_workflow(token, account, wanted, exists=plan.action == "update")
        except (ApiError, CircuitOpenError) as exc:
            raise _amc_failed(exc) from None
    async with runtime_of(request).pool.acquire() as conn, conn.transaction():
        version, new = await registry.add_version(
            conn, instance_id, workflow_id, wanted.sql_query, wanted.input_parameters, body.author
        )
    return PushResult(action=plan.action, diff=plan.diff, version=version.version, new_version=new)


@router.get("/{instance_id}", response_model=WorkflowList)
async def list_workflows(request: Request, instance_id: str) -> Any:
    ctx, account, token = await _managed(request, instance_id)
    try:
        at_amc = await ctx.amc.list_workflows(token, account)
    except (ApiError, CircuitOpenError) as exc:
        raise _amc_failed(exc) from None
    async with runtime_of(request).pool.acquire() as conn:
        views = [
            WorkflowView(
                instance_id=instance_id,
                workflow_id=w.workflow_id,
                at_amc=w.to_body(),
                versions=[
                    VersionView.of(v)
                    for v in await registry.versions(conn, instance_id, w.workflow_id)
                ],
            )
            for w in at_amc
        ]
    return WorkflowList(instance_id=instance_id, workflows=views)


@router.get("/{instance_id}/{workflow_id}", response_model=WorkflowView)
async def show(request: Request, instance_id: str, workflow_id: str) -> Any:
    ctx, account, token = await _managed(request, instance_id)
    current = await _at_amc(ctx, token, account, workflow_id)
    async with runtime_of(request).pool.acquire() as conn:
        versions = await registry.versions(conn, instance_id, workflow_id)
    if current is None and not versions:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"workflow {workflow_id} is not at AMC on {instance_id}"
        )
    return WorkflowView(
        instance_id=instance_id,
        workflow_id=workflow_id,
        at_amc=None if current is None else current.to_body(),
        versions=[VersionView.of(v) for v in versions],
    )


@router.delete("/{instance_id}/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(request: Request, instance_id: str, workflow_id: str) -> None:
    """Delete it at AMC; the versions pushed through us stay as its history."""
    ctx, account, token = await _managed(request, instance_id)
    try:
        await ctx.amc.delete_workflow(token, account, workflow_id)
    except ClientRequestError as exc:
        if exc.status == 404:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"workflow {workflow_id} is not at AMC"
            ) from None
        raise _amc_failed(exc) from None
    except (ApiError, CircuitOpenError) as exc:
        raise _amc_failed(exc) from None
