"""AMC's saved-workflow routes, as Amazon publishes them (docs/amc; Amazon's OpenAPI document
operations createWorkflow, getWorkflow, listWorkflows, updateWorkflow, deleteWorkflow, and
the Postman samples, and Amazon's create-workflow guide for the fields it adds): a workflow
keeps every published field it is given; create answers an empty object, and 400
"Workflow with ID ... already exists." (the text Amazon's own client matches) when it
does; get answers the workflow at the top level, as the sample shows.

Executions may still name workflow ids never saved here (not documented what AMC answers
then; the tests' executions name workflows freely).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amclocal.simulator.answers import WORKFLOWS_MEDIA_TYPE as MEDIA_TYPE
from amclocal.simulator.answers import Admit, amc_error, check_parameters, json_body, unrecognized
from amclocal.simulator.config import RouteKind
from amclocal.simulator.contract import schema_properties
from amclocal.simulator.gate import Reject
from amclocal.simulator.state import SimState

BASE = "/amc/reporting/{instance_id}/workflows"
_STRING_FIELDS = (
    "inputSchema",
    "filteredMetricsDiscriminatorColumn",
    "filteredReasonColumn",
    "distinctUserCountColumn",
)
_PRIVACY_BEHAVIORS = ("REMOVE_ROWS", "REMOVE_VALUES")
_OUTPUT_FORMAT_FIELDS = frozenset({"escapeCharacter", "quoteCharacter", "separatorCharacter"})


def _answer(body: Any) -> JSONResponse:
    return JSONResponse(body, media_type=MEDIA_TYPE)


def _bad(details: str) -> Reject:
    return amc_error(400, "BAD_REQUEST", details, MEDIA_TYPE)


def _definition(body: Any, workflow_id: str | None = None) -> dict[str, Any]:
    """The workflow as AMC would keep it: every field of the published Workflow schema is
    taken (the field list is read from docs/amc, so it cannot fall behind the document) and
    typed as published; anything else is refused. An update replaces the whole definition
    ("the request body directly as the new workflow definition")."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object")
    unknown = sorted(set(body) - schema_properties("SavedWorkflow"))
    if unknown:
        raise unrecognized(unknown, MEDIA_TYPE)
    given = body.get("workflowId")
    if not isinstance(given, str) or not given.strip():
        raise _bad("workflowId is required")
    if workflow_id is not None and given != workflow_id:
        raise _bad("workflowId does not match the path")
    sql = body.get("sqlQuery")
    if not isinstance(sql, str) or not sql.strip():
        raise _bad("sqlQuery is required")
    check_parameters(body.get("inputParameters", []), "inputParameters", MEDIA_TYPE)
    for name in _STRING_FIELDS:
        if name in body and not isinstance(body[name], str):
            raise _bad(f"{name} must be a string")
    if "privacyFilteringBehavior" in body and body["privacyFilteringBehavior"] not in (
        _PRIVACY_BEHAVIORS
    ):
        raise _bad(f"privacyFilteringBehavior must be one of {', '.join(_PRIVACY_BEHAVIORS)}")
    columns = body.get("outputColumns", [])
    if not isinstance(columns, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in columns
    ):
        raise _bad("outputColumns must be a list of named columns")
    output_format = body.get("outputFormat", {})
    if (
        not isinstance(output_format, dict)
        or not set(output_format) <= _OUTPUT_FORMAT_FIELDS
        or not all(isinstance(v, str) for v in output_format.values())
    ):
        raise _bad(
            "outputFormat must be an object of "
            + ", ".join(sorted(_OUTPUT_FORMAT_FIELDS))
            + " (strings)"
        )
    query = body.get("query", [])
    if not isinstance(query, list) or not all(isinstance(q, str) for q in query):
        raise _bad("query must be a list of strings")
    return {name: value for name, value in body.items() if value is not None}


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
