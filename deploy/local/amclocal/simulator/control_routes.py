"""/_sim/*: set the simulator up, break it on purpose, and look at what it saw."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from amclocal.simulator.config import (
    ClientRegistration,
    CodeRegistration,
    FaultRule,
    InstanceRegistration,
    Rejection,
    RouteKind,
    SimConfig,
    UserRegistration,
    WorkflowBehavior,
)
from amclocal.simulator.executions import ExecutionView
from amclocal.simulator.gate import CONTROL_PREFIX
from amclocal.simulator.requestlog import RequestRecord, Stats
from amclocal.simulator.state import SimState

_OK = {"ok": True}


def control_router(state: SimState) -> APIRouter:
    router = APIRouter(prefix=CONTROL_PREFIX)

    @router.get("/healthz")
    async def healthz() -> dict[str, bool | int]:
        # The pid lets a launcher tell its own simulator from another one on the same port.
        return {"ok": True, "pid": os.getpid()}

    @router.get("/config")
    async def get_config() -> SimConfig:
        return state.config

    @router.post("/config")
    async def set_config(changes: dict[str, Any]) -> SimConfig:
        """Only the fields given change; a new seed restarts the random sequence."""
        try:
            state.config = SimConfig.model_validate(state.config.model_dump() | changes)
        except ValidationError as error:
            raise HTTPException(422, error.errors(include_url=False)) from None
        if "seed" in changes:
            state.rng.seed(state.config.seed)
        return state.config

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return _OK

    @router.post("/lwa/clients")
    async def register_client(reg: ClientRegistration) -> dict[str, bool]:
        state.identity.register_client(reg)
        return _OK

    @router.post("/lwa/users")
    async def register_user(reg: UserRegistration) -> dict[str, bool]:
        state.identity.register_user(reg)
        return _OK

    @router.post("/lwa/codes")
    async def register_code(reg: CodeRegistration) -> dict[str, bool]:
        state.identity.register_code(reg)
        return _OK

    @router.post("/lwa/users/{user_id}/revoke")
    async def revoke(user_id: str) -> dict[str, bool]:
        if not state.identity.revoke(user_id):
            raise HTTPException(404, f"unknown user {user_id}")
        return _OK

    @router.post("/lwa/users/{user_id}/expire-access-tokens")
    async def expire_access_tokens(user_id: str) -> dict[str, int]:
        return {"expired": state.identity.expire_access_tokens(user_id, state.now())}

    @router.post("/lwa/users/{user_id}/revoke-access-tokens")
    async def revoke_access_tokens(user_id: str) -> dict[str, int]:
        """The user's access tokens stop working before their expiry; the refresh token
        still works (Amazon revoking or rotating access tokens, issue 20)."""
        if user_id not in state.identity.users:
            raise HTTPException(404, f"unknown user {user_id}")
        return {"revoked": state.identity.revoke_access_tokens(user_id)}

    @router.post("/amc/instances")
    async def register_instance(reg: InstanceRegistration) -> dict[str, bool]:
        state.amc.register_instance(reg)
        return _OK

    @router.post("/amc/workflows")
    async def set_workflow(behavior: WorkflowBehavior) -> dict[str, bool]:
        state.amc.behaviors[behavior.workflow_id] = behavior
        return _OK

    @router.post("/amc/executions/{execution_id}/expire-results")
    async def expire_results(execution_id: str) -> dict[str, bool]:
        execution = state.amc.find(execution_id)
        if execution is None:
            raise HTTPException(404, f"unknown execution {execution_id}")
        execution.results_expired = True
        return _OK

    @router.post("/amc/executions/{execution_id}/reject")
    async def reject(execution_id: str, body: Rejection) -> dict[str, bool]:
        """End a PENDING or RUNNING execution REJECTED now, with `reason` as statusReason."""
        execution = state.amc.find(execution_id)
        if execution is None:
            raise HTTPException(404, f"unknown execution {execution_id}")
        now = state.now()
        instance = state.amc.instances[execution.instance_id]
        instance.advance(now, state.config.max_running)
        if not instance.reject(execution, now, body.reason):
            raise HTTPException(409, f"execution {execution_id} is {execution.status.value}")
        return _OK

    @router.get("/executions")
    async def executions(instance_id: str | None = None) -> list[ExecutionView]:
        state.amc.advance_all(state.now(), state.config.max_running)
        return [
            ExecutionView.of(execution)
            for instance in state.amc.instances.values()
            if instance_id is None or instance.instance_id == instance_id
            for execution in instance.executions.values()
        ]

    @router.get("/faults")
    async def faults() -> list[FaultRule]:
        return state.faults

    @router.post("/faults")
    async def add_fault(rule: FaultRule) -> list[FaultRule]:
        state.faults.append(rule)
        return state.faults

    @router.delete("/faults")
    async def clear_faults() -> dict[str, bool]:
        state.faults.clear()
        return _OK

    @router.get("/requests")
    async def requests(
        instance_id: str | None = None, kind: RouteKind | None = None
    ) -> list[RequestRecord]:
        return state.log.select(instance_id, kind)

    @router.get("/contract-violations")
    async def contract_violations() -> list[str]:
        return state.contract_violations

    @router.get("/stats")
    async def stats() -> Stats:
        return state.stats()

    return router
