"""Every AMC API exchange the simulator serves, checked against AMC's published API.

A request the simulator accepted (2xx) that the document refuses means the simulator is more
lenient than AMC; an answer the document does not describe means the simulator speaks an API
AMC does not have. Both are kept in `SimState.contract_violations` for the tests to fail on
(tests/simfixtures.py checks after every test). Requests the simulator refused are not
violations: refusing them is AMC's behaviour too, with one exception: refusing a field
AMC's API publishes ("Unrecognized field(s): ...") is a simulator defect, never AMC's
behaviour, and is kept as a violation like the others.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amclocal.simulator.answers import UNRECOGNIZED
from amclocal.simulator.contract import published, schema_properties
from amclocal.simulator.state import SimState

log = logging.getLogger(__name__)

AMC_PREFIXES = ("/amc/reporting/", "/amc/accounts", "/amc/instances")
# openapi-core's words for a method or path the document does not have: nothing to hold
# the answer against (the simulator answered it as any server would, 404 or 405).
_UNDOCUMENTED = ("Operation ", "Path not found")


class ContractGuard:
    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(AMC_PREFIXES)
            or not self._state.config.contract_guard
        ):
            await self._app(scope, receive, send)
            return
        request_body = bytearray()
        answer: dict[str, object] = {"body": bytearray()}

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.extend(message.get("body", b""))
            return message

        async def send_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = [(k.decode(), v.decode()) for k, v in message["headers"]]
            elif message["type"] == "http.response.body":
                body = answer["body"]
                assert isinstance(body, bytearray)
                body.extend(message.get("body", b""))
            await send(message)

        await self._app(scope, receive_and_keep, send_and_keep)
        self._check(scope, bytes(request_body), answer)

    def _check(self, scope: Scope, request_body: bytes, answer: dict[str, object]) -> None:
        status = answer.get("status")
        headers = answer.get("headers")
        body = answer["body"]
        if not isinstance(status, int) or not isinstance(headers, list):
            return
        assert isinstance(body, bytearray)
        request_headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        host = dict(request_headers).get("host", "localhost")
        query = scope["query_string"].decode()
        url = f"http://{host}{scope['path']}" + (f"?{query}" if query else "")
        method = scope["method"]
        contract = published()
        asked = contract.request_problems(method, url, request_headers, request_body or None)
        where = f"{method} {scope['path']}"
        if asked and 200 <= status < 300:
            self._note(f"{where}: accepted ({status}) a request AMC's API refuses: {asked}")
        refused = sorted(
            name for name in _refused_fields(status, bytes(body)) if _published(scope["path"], name)
        )
        if refused:
            self._note(
                f"{where}: refused published field(s) {', '.join(refused)} as unrecognized: "
                "AMC's API has them, so the simulator must take them"
            )
        if any(p.startswith(_UNDOCUMENTED) for p in asked):
            return
        answered = contract.response_problems(
            method, url, request_headers, request_body or None, status, headers, bytes(body)
        )
        if answered:
            self._note(f"{where}: answered {status} in a shape AMC's API does not have: {answered}")

    def _note(self, violation: str) -> None:
        log.error("contract violation: %s", violation)
        self._state.contract_violations.append(violation[:4000])


def _refused_fields(status: int, body: bytes) -> set[str]:
    """The fields a 400 answer says it does not recognise (answers.unrecognized)."""
    if status != 400:
        return set()
    try:
        details = json.loads(body).get("details")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(details, str) or not details.startswith(UNRECOGNIZED):
        return set()
    return {name.strip() for name in details.removeprefix(UNRECOGNIZED).split(",")}


def _published(path: str, name: str) -> bool:
    """Whether AMC's API publishes field `name` (`workflow.X`: X of an execution request's
    inline workflow) in the request body of the route at `path`."""
    if "/workflowExecutions" in path:
        inline, _, field = name.partition("workflow.")
        if not inline and field:
            return field in schema_properties("Workflow")
        return name in schema_properties("CreateWorkflowExecutionRequest")
    return name in schema_properties("SavedWorkflow")
