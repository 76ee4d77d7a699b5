"""The simulator as an ASGI application over one SimState."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from amclocal.simulator.admin_routes import admin_router
from amclocal.simulator.amc_routes import amc_router
from amclocal.simulator.config import SimConfig
from amclocal.simulator.control_routes import control_router
from amclocal.simulator.gate import (
    AMC_MEDIA_TYPE,
    CONTROL_PREFIX,
    KeepStateMiddleware,
    Reject,
    RequestLogMiddleware,
)
from amclocal.simulator.guard import ContractGuard
from amclocal.simulator.lwa_routes import lwa_router
from amclocal.simulator.persist import StateFile
from amclocal.simulator.state import SimState


def create_app(config: SimConfig | None = None, store: StateFile | None = None) -> FastAPI:
    state = SimState(config or SimConfig(), store)
    # AMC, LWA and their storage are outside the product's traces: the simulator standing in
    # for them records no spans of its own, even when it runs inside a traced test process.
    app = FastAPI(
        title="AMC and LWA simulator",
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False},
    )
    app.include_router(lwa_router(state))
    app.include_router(amc_router(state))
    app.include_router(admin_router(state))
    app.include_router(control_router(state))
    app.add_middleware(ContractGuard, state=state)
    app.add_middleware(RequestLogMiddleware, state=state)
    if store is not None:
        app.add_middleware(KeepStateMiddleware, state=state)
    app.state.sim = state

    async def answer_reject(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Reject)
        return JSONResponse(
            exc.body, status_code=exc.status, headers=exc.headers, media_type=exc.media_type
        )

    async def answer_http_error(request: Request, exc: Exception) -> JSONResponse:
        """Unknown routes (404) and methods (405, e.g. DELETE on an execution) answer in
        AMC's error shape outside /_sim, FastAPI's inside it."""
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith(CONTROL_PREFIX):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return JSONResponse(
            {"code": str(exc.status_code), "details": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
            media_type=AMC_MEDIA_TYPE,
        )

    app.add_exception_handler(Reject, answer_reject)
    app.add_exception_handler(HTTPException, answer_http_error)
    return app
