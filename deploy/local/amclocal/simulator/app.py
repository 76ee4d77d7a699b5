"""The simulator as an ASGI application over one SimState."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from amclocal.simulator.amc_routes import amc_router
from amclocal.simulator.config import SimConfig
from amclocal.simulator.control_routes import control_router
from amclocal.simulator.gate import Reject, RequestLogMiddleware
from amclocal.simulator.lwa_routes import lwa_router
from amclocal.simulator.state import SimState


def create_app(config: SimConfig | None = None) -> FastAPI:
    state = SimState(config or SimConfig())
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
    app.include_router(control_router(state))
    app.add_middleware(RequestLogMiddleware, state=state)

    async def answer_reject(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Reject)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    app.add_exception_handler(Reject, answer_reject)
    return app
