"""Management API: /workflows, saved workflows at AMC and the versions pushed through us.

Every AMC call goes through the poller's gateway (rate slot, breaker, metrics) with the
access token of the instance's managing user (`instances.user_id`).
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import JsonValue

from services.poller import flow, token_store
from services.poller.exchange import failure_policy
from services.poller.exchange.gateway import CircuitOpenError
from services.poller.exchange.tokens import Token
from services.poller.instances import registry
from services.poller.instances.directory import Target
from services.poller.runtime import PollerRuntime, RuntimeDep
from services.poller.worker import Context
from services.poller.workflows.files import (
    WorkflowFileError,
    render_workflow_file,
)
from services.poller.workflows.schemas import (
    InputParameter,
    PushPlan,
    PushResult,
    Verdict,
    VersionView,
    WorkflowCheck,
    WorkflowList,
    WorkflowPush,
    WorkflowView,
)
from shared.clients import AmcAccount, ApiError, ClientRequestError, SavedWorkflow
from shared.clients.amc_models import AmcStatus, ExecutionOptions, ExecutionRequest
from shared.contract.values import TimeWindowType

router = APIRouter(prefix="/workflows", tags=["workflows"])


@dataclass(frozen=True)
class _Managed:
    """What a call to AMC on an instance's behalf needs: the gateway, the instance's account,
    its managing user and that user's access token."""

    ctx: Context
    account: AmcAccount
    user_id: str
    token: Token

    async def failed(self, exc: ApiError | CircuitOpenError) -> HTTPException:
        """The answer to a failed AMC call. A refused access token is never sent again: a
        newer one is asked for (as a run would), and the caller is told to try again soon."""
        if isinstance(exc, ApiError) and failure_policy.token_refused(exc):
            fp = self.token.fingerprint
            async with self.ctx.pool.acquire() as conn, conn.transaction():
                await token_store.invalidate_token(conn, self.user_id, fp)
                await flow.ask_for_token(
                    conn, self.ctx.outbox, self.user_id, f"AMC refused token {fp}", fp
                )
            return HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"AMC refused the access token {fp} of user {self.user_id} ({exc}); a newer "
                "one was asked for: try again in a few seconds",
                headers={"Retry-After": "5"},
            )
        return _amc_failed(exc)


async def _managed(runtime: PollerRuntime, instance_id: str) -> _Managed:
    """The gateway, the instance's account and its managing user's access token."""
    ctx = await runtime.context()
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
        async with runtime.pool.acquire() as conn, conn.transaction():
            await flow.ask_for_token(
                conn, ctx.outbox, instance.user_id, "workflow management needs a token"
            )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"no valid access token for user {instance.user_id} yet; one was asked for: "
            "try again in a few seconds",
            headers={"Retry-After": "5"},
        )
    return _Managed(ctx, account, instance.user_id, token)


def _amc_failed(exc: ApiError | CircuitOpenError) -> HTTPException:
    if isinstance(exc, ClientRequestError):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"AMC refused: {exc}")
    return HTTPException(status.HTTP_502_BAD_GATEWAY, f"AMC: {exc}")


async def _at_amc(m: _Managed, workflow_id: str) -> SavedWorkflow | None:
    try:
        return await m.ctx.amc.get_workflow(m.token, m.account, workflow_id)
    except ClientRequestError as exc:
        if exc.status == 404:
            return None
        raise await m.failed(exc) from None
    except (ApiError, CircuitOpenError) as exc:
        raise await m.failed(exc) from None


def _text(workflow: SavedWorkflow | None) -> list[str]:
    if workflow is None:
        return []
    try:
        return render_workflow_file(workflow.to_body()).splitlines(keepends=True)
    except WorkflowFileError:
        # SQL with a line a file would read as a header: show the fields as JSON instead.
        return json.dumps(workflow.to_body(), indent=2, sort_keys=True).splitlines(keepends=True)


def _plan(current: SavedWorkflow | None, wanted: SavedWorkflow) -> PushPlan:
    diff = "".join(
        difflib.unified_diff(_text(current), _text(wanted), "at AMC", "pushed", lineterm="\n")
    )
    definition = wanted.to_body()
    if current is None:
        return PushPlan(action="create", diff=diff, definition=definition)
    same = current.to_body() == definition
    return PushPlan(action="unchanged" if same else "update", diff=diff, definition=definition)


def _same_sql(a: str, b: str) -> bool:
    return "\n".join(a.splitlines()).strip() == "\n".join(b.splitlines()).strip()


def _merged_parameters(
    current: list[dict[str, JsonValue]], given: list[InputParameter]
) -> list[dict[str, JsonValue]]:
    """The given list, each parameter over AMC's of the same name: what it leaves out stays,
    what it gives as null goes."""
    held = {p.get("name"): p for p in current}
    merged = []
    for parameter in given:
        changes = parameter.model_dump(mode="json", exclude_unset=True)
        both = {**held.get(parameter.name, {}), **changes}
        merged.append({k: v for k, v in both.items() if v is not None})
    return merged


def _wanted(current: SavedWorkflow | None, workflow_id: str, body: WorkflowPush) -> SavedWorkflow:
    """AMC's definition with the push's changes: AMC's update takes its body "directly as
    the new workflow definition" (Amazon's OpenAPI), and Amazon's create-workflow guide says
    to GET the workflow and change the fields wanted, so nothing is left out."""
    held = current or SavedWorkflow(workflow_id, body.sql_query)
    sql = held.sql_query if _same_sql(held.sql_query, body.sql_query) else body.sql_query
    parameters = held.input_parameters
    if body.input_parameters is not None:
        parameters = _merged_parameters(held.input_parameters, body.input_parameters)
    settings = dict(held.settings)
    for name, value in body.settings.changes().items():
        if value is None:
            settings.pop(name, None)
        else:
            settings[name] = value
    return SavedWorkflow(workflow_id, sql, parameters, settings)


async def _pushed(
    runtime: PollerRuntime, instance_id: str, workflow_id: str, body: WorkflowPush
) -> tuple[_Managed, SavedWorkflow, PushPlan]:
    m = await _managed(runtime, instance_id)
    current = await _at_amc(m, workflow_id)
    wanted = _wanted(current, workflow_id, body)
    return m, wanted, _plan(current, wanted)


@router.post("/{instance_id}/{workflow_id}/plan", response_model=PushPlan)
async def plan_push(
    runtime: RuntimeDep, instance_id: str, workflow_id: str, body: WorkflowPush
) -> Any:
    """What a push would do (create, update or nothing), with the difference: sends nothing."""
    return (await _pushed(runtime, instance_id, workflow_id, body))[2]


@router.put("/{instance_id}/{workflow_id}", response_model=PushResult)
async def push(runtime: RuntimeDep, instance_id: str, workflow_id: str, body: WorkflowPush) -> Any:
    """Create or update the workflow at AMC, and keep the pushed definition as a version
    (the same definition as the latest version makes none)."""
    m, wanted, plan = await _pushed(runtime, instance_id, workflow_id, body)
    if plan.action != "unchanged":
        try:
            await m.ctx.amc.push_workflow(
                m.token, m.account, wanted, exists=plan.action == "update"
            )
        except (ApiError, CircuitOpenError) as exc:
            raise await m.failed(exc) from None
    async with runtime.pool.acquire() as conn, conn.transaction():
        version, new = await registry.add_version(conn, instance_id, wanted, body.author)
    return PushResult(
        action=plan.action,
        diff=plan.diff,
        definition=plan.definition,
        version=version.version,
        new_version=new,
    )


@router.get("/{instance_id}", response_model=WorkflowList)
async def list_workflows(runtime: RuntimeDep, instance_id: str) -> Any:
    m = await _managed(runtime, instance_id)
    try:
        at_amc = await m.ctx.amc.list_workflows(m.token, m.account)
    except (ApiError, CircuitOpenError) as exc:
        raise await m.failed(exc) from None
    async with runtime.pool.acquire() as conn:
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
async def show(runtime: RuntimeDep, instance_id: str, workflow_id: str) -> Any:
    current = await _at_amc(await _managed(runtime, instance_id), workflow_id)
    async with runtime.pool.acquire() as conn:
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
async def delete(runtime: RuntimeDep, instance_id: str, workflow_id: str) -> None:
    """Delete it at AMC; the versions pushed through us stay as its history."""
    m = await _managed(runtime, instance_id)
    try:
        await m.ctx.amc.delete_workflow(m.token, m.account, workflow_id)
    except ClientRequestError as exc:
        if exc.status == 404:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"workflow {workflow_id} is not at AMC"
            ) from None
        raise await m.failed(exc) from None
    except (ApiError, CircuitOpenError) as exc:
        raise await m.failed(exc) from None


async def _verdict(ctx: Context, token: Token, at: Target, amc_id: str) -> Verdict:
    """Polls the dry run until it ends, at most validate_timeout_s."""
    settings = ctx.settings
    deadline = asyncio.get_running_loop().time() + settings.validate_timeout_s
    intervals = settings.validate_poll_intervals_s
    for attempt in itertools.count():
        delay = intervals[min(attempt, len(intervals) - 1)]
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        # AMC has nothing to await: a dry run's end is only seen by asking.
        await asyncio.sleep(min(delay, left))
        info = await ctx.amc.get(token, at, amc_id)
        if info.status.is_terminal:
            return Verdict(
                valid=info.status is AmcStatus.SUCCEEDED,
                status=info.status_text or info.status.value,
                reason=info.error_message,
                amc_execution_id=amc_id,
            )
    return Verdict(
        valid=None,
        status="PENDING",
        reason=f"AMC gave no verdict within {settings.validate_timeout_s:g} s",
        amc_execution_id=amc_id,
    )


@router.post("/{instance_id}/validate", response_model=Verdict)
async def validate(runtime: RuntimeDep, instance_id: str, body: WorkflowCheck) -> Any:
    """AMC's verdict on the SQL and parameters through a dry run (Amazon's OpenAPI, dryRun:
    "validate workflow executions (e.g., the sqlQuery) without consuming quotas or compute
    resources"): nothing runs, no execution of ours is made, and the daily cap is untouched."""
    m = await _managed(runtime, instance_id)
    ctx, token = m.ctx, m.token
    instance = await ctx.instances.get(instance_id)
    if instance is None:  # removed since _managed looked
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instance {instance_id} is not registered")
    at = ctx.instances.target_of(instance)
    sandbox = at.sandbox
    inline = SavedWorkflow(
        "inline",
        body.sql_query,
        [p.model_dump(mode="json", exclude_none=True) for p in body.input_parameters],
        {k: v for k, v in body.settings.changes().items() if v is not None},
    ).to_body()
    del inline["workflowId"], inline["sqlQuery"]  # an inline workflow has no id
    check = ExecutionRequest(
        workflow_id=None,
        sql_query=body.sql_query,
        inline=inline,
        # AMC's own default window ("If not provided, ... MOST_RECENT_DAY will be used").
        time_window_type=TimeWindowType.MOST_RECENT_DAY,
        parameter_values=body.parameter_values,
        options=ExecutionOptions(dry_run=True, require_synthetic_data=True if sandbox else None),
    )
    try:
        created = await ctx.amc.create(token, at, check)
    except ClientRequestError as exc:
        if exc.status in (400, 422) and not failure_policy.token_refused(exc):
            return Verdict(valid=False, status="REFUSED", reason=str(exc), amc_execution_id=None)
        raise await m.failed(exc) from None
    except (ApiError, CircuitOpenError) as exc:
        raise await m.failed(exc) from None
    try:
        return await _verdict(ctx, token, at, created.workflow_execution_id)
    except (ApiError, CircuitOpenError) as exc:
        raise await m.failed(exc) from None
