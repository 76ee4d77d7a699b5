"""AMC's saved-workflow routes, as Amazon publishes them (docs/amc; Amazon's OpenAPI document
operations createWorkflow, getWorkflow, listWorkflows, updateWorkflow, deleteWorkflow, and
the Postman samples): create answers an empty object, and 400 "Workflow with ID ... already
exists." (the text Amazon's own client matches) when it does; get answers the workflow at
the top level, as the sample shows.

Executions may still name workflow ids never saved here (not documented what AMC answers
then; the tests' executions name workflows freely).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amclocal.simulator.answers import WORKFLOWS_MEDIA_TYPE as MEDIA_TYPE
from amclocal.simulator.answers import Admit, amc_error, json_body
from amclocal.simulator.config import RouteKind
from amclocal.simulator.state import SimState

BASE = "/amc/reporting/{instance_id}/workflows"
_FIELDS = frozenset({"workflowId", "sqlQuery", "inputParameters", "outputColumns", "query"})


def _answer(body: Any) -> JSONResponse:
    return JSONResponse(body, media_type=MEDIA_TYPE)


def _definition(body: Any, workflow_id: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise amc_error(400, "BAD_REQUEST", "The request body must be a JSON object", MEDIA_TYPE)
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise amc_error(
            400, "BAD_REQUEST", f"Unrecognized field(s): {', '.join(unknown)}", MEDIA_TYPE
        )
    given = body.get("workflowId")
    if not isinstance(given, str) or not given.strip():
        raise amc_error(400, "BAD_REQUEST", "workflowId is required", MEDIA_TYPE)
    if workflow_id is not None and given != workflow_id:
        raise amc_error(400, "BAD_REQUEST", "workflowId does not match the path", MEDIA_TYPE)
    sql = body.get("sqlQuery")
    if not isinstance(sql, str) or not sql.strip():
        raise amc_error(400, "BAD_REQUEST", "sqlQuery is required", MEDIA_TYPE)
    parameters = body.get("inputParameters", [])
    if not isinstance(parameters, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters
    ):
        raise amc_error(
            400, "BAD_REQUEST", "inputParameters must be a list of named parameters", MEDIA_TYPE
        )
    definition: dict[str, Any] = {"workflowId": given, "sqlQuery": sql}
    if parameters:
        definition["inputParameters"] = parameters
    return definition


def workflow_router(state: SimState, admit: Admit) -> APIRouter:
    router = APIRouter()

    @router.post(BASE)
    async def create(request: Request, instance_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.WORKFLOWS, instance_id)
        definition = _definition(await json_body(request, MEDIA_TYPE))
        workflow_id = definition["workflowId"]
        if workflow_id in instance.workflows:
            raise amc_error(
                400, "BAD_REQUEST", f"Workflow with ID {workflow_id} already exists.", MEDIA_TYPE
            )
        instance.workflows[workflow_id] = definition
        if late is not None:
            raise late
        return _answer({})

    @router.get(BASE)
    async def list_workflows(request: Request, instance_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.WORKFLOWS, instance_id)
        if late is not None:
            raise late
        return _answer({"workflows": list(instance.workflows.values())})

    @router.get(BASE + "/{workflow_id}")
    async def get(request: Request, instance_id: str, workflow_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.WORKFLOWS, instance_id)
        found = instance.workflows.get(workflow_id)
        if found is None:
            raise amc_error(404, "NOT_FOUND", f"Workflow {workflow_id} was not found", MEDIA_TYPE)
        if late is not None:
            raise late
        return _answer(found)

    @router.put(BASE + "/{workflow_id}")
    async def update(request: Request, instance_id: str, workflow_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.WORKFLOWS, instance_id)
        if workflow_id not in instance.workflows:
            raise amc_error(404, "NOT_FOUND", f"Workflow {workflow_id} was not found", MEDIA_TYPE)
        instance.workflows[workflow_id] = _definition(
            await json_body(request, MEDIA_TYPE), workflow_id
        )
        if late is not None:
            raise late
        return _answer({})

    @router.delete(BASE + "/{workflow_id}")
    async def delete(request: Request, instance_id: str, workflow_id: str) -> JSONResponse:
        instance, late = await admit(request, RouteKind.WORKFLOWS, instance_id)
        if instance.workflows.pop(workflow_id, None) is None:
            raise amc_error(404, "NOT_FOUND", f"Workflow {workflow_id} was not found", MEDIA_TYPE)
        if late is not None:
            raise late
        return _answer({})

    return router
