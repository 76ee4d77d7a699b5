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
    state = SimState(SimConfig())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = unrecognized([field], "application/vnd.amcworkflows.v1+json")
        body = json.dumps(refusal.body).encode()
        await receive()
        headers = [(b"content-type", b"application/vnd.amcworkflows.v1+json")]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return ContractGuard(app, state)


@pytest.mark.parametrize(
    ("field", "defect"), [("outputFormat", True), ("distinctUserCountColumn", True), ("x", False)]
)
async def test_refusing_a_published_field_is_a_violation(field: str, defect: bool) -> None:
    guard = refusing(field)
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        body = {"workflowId": "w", "sqlQuery": "SELECT 1", field: "y"}
        answer = await http.post(PATH, json=body, headers=HEADERS)
    assert answer.status_code == 400
    violations = guard._state.contract_violations
    if defect:
        assert len(violations) == 1
        assert f"refused published field(s) {field} as unrecognized" in violations[0]
    else:
        assert violations == []
