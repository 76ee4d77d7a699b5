"""The simulator's contract guard: refusing a field AMC's API publishes is a simulator defect,
kept as a violation, while refusing an invented field is AMC's own behaviour."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from amclocal.simulator.answers import unrecognized
from amclocal.simulator.config import SimConfig
from amclocal.simulator.guard import ContractGuard
from amclocal.simulator.state import SimState

PATH = "/amc/reporting/inst-1/workflows"
HEADERS = {
    "Amazon-Advertising-API-ClientId": "client",
    "Authorization": "Bearer token",
    "Amazon-Advertising-API-AdvertiserId": "adv",
    "Amazon-Advertising-API-MarketplaceId": "mkt",
    "Accept": "application/vnd.amcworkflows.v1+json",
}


def refusing(field: str) -> ContractGuard:
    """A stand-in for the simulator that refuses `field` as unrecognized, in the media type
    of the route's resource."""
    state = SimState(SimConfig())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        media_type = (
            "application/vnd.amcworkflowexecutions.v1+json"
            if "/workflowExecutions" in scope["path"]
            else "application/vnd.amcworkflows.v1+json"
        )
        body = json.dumps(unrecognized([field], media_type).body).encode()
        await receive()
        headers = [(b"content-type", media_type.encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return ContractGuard(app, state)


EXECUTIONS = "/amc/reporting/inst-1/workflowExecutions"


@pytest.mark.parametrize(
    ("path", "field", "defect"),
    [
        (PATH, "outputFormat", True),
        (PATH, "distinctUserCountColumn", True),
        (PATH, "x", False),
        (EXECUTIONS, "dryRun", True),
        (EXECUTIONS, "workflow.outputColumns", True),
        # A workflow field, but not one of an execution request's own.
        (EXECUTIONS, "outputFormat", False),
    ],
)
async def test_refusing_a_published_field_is_a_violation(
    path: str, field: str, defect: bool
) -> None:
    guard = refusing(field)
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        body = {"workflowId": "w", "sqlQuery": "SELECT 1", field: "y"}
        answer = await http.post(path, json=body, headers=HEADERS)
    assert answer.status_code == 400
    violations = guard._state.contract_violations
    if defect:
        assert len(violations) == 1
        assert f"refused published field(s) {field} as unrecognized" in violations[0]
    else:
        assert violations == []
