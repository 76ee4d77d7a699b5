"""What every simulated request passes first: the request log entry and injected faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amclocal.simulator.config import RouteKind
from amclocal.simulator.requestlog import RequestRecord
from amclocal.simulator.state import SimState

_RECORD_KEY = "amclocal.record"
AMC_MEDIA_TYPE = "application/vnd.amcworkflowexecutions.v1+json"
CONTROL_PREFIX = "/_sim"


class Reject(Exception):
    """Answer the request with this status and JSON body instead of running the route."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        media_type: str = "application/json",
    ):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.media_type = media_type


class RequestLogMiddleware:
    """Logs every non-control request on arrival, and its status once answered."""

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self._app(scope, receive, send)
            return
        record = RequestRecord(time=time.time(), method=scope["method"], path=scope["path"])
        self._state.log.add(record)
        scope[_RECORD_KEY] = record

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        await self._app(scope, receive, send_and_note)


class KeepStateMiddleware:
    """Saves the kept state before the answer to a request that may have changed it leaves,
    so whatever the product was told survives the simulator being killed right after."""

    _READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self._READS:
            await self._app(scope, receive, send)
            return

        async def save_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._state.save()
            await send(message)

        await self._app(scope, receive, save_then_send)


def record_of(request: Request) -> RequestRecord:
    """The request's log entry (a detached one for requests that are not logged)."""
    record = request.scope.get(_RECORD_KEY)
    if isinstance(record, RequestRecord):
        return record
    return RequestRecord(time=time.time(), method=request.method, path=request.url.path)


async def inject_faults(state: SimState, kind: RouteKind) -> Reject | None:
    """Delay, then fail now (raised) or hand back the failure to answer once the request has
    taken effect (`after_handling` rules)."""
    decision = state.decide_fault(kind)
    if decision.delay_seconds > 0:
        await asyncio.sleep(decision.delay_seconds)
    if decision.fail_status is None:
        return None
    description = "Simulated service failure"
    if kind is RouteKind.TOKEN:
        failure = Reject(
            decision.fail_status, {"error": "server_error", "error_description": description}
        )
    elif decision.fail_status == 429:
        retry = decision.retry_after_s
        failure = Reject(
            429,
            {"code": "429", "details": "Too many requests. The request was rate-limited."},
            headers=None if retry is None else {"Retry-After": str(retry)},
            media_type=AMC_MEDIA_TYPE,
        )
    else:
        # Error.code is "the HTTP status code of the response" (Amazon's OpenAPI).
        failure = Reject(
            decision.fail_status,
            {"code": str(decision.fail_status), "details": description},
            media_type=AMC_MEDIA_TYPE,
        )
    if decision.after_handling:
        return failure
    raise failure
