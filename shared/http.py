"""One HTTP port per service: health, readiness, Prometheus metrics, and the management API."""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.runtime import ServiceRuntime
from shared.telemetry import shutdown_tracing

_bearer = HTTPBearer(auto_error=False)

T = TypeVar("T")


class Wired(Generic[T]):
    """A typed FastAPI dependency whose value the app supplies when it is built.

    A routes module declares `Dep = Annotated[X, Depends(wired)]` and its routes take a `Dep`
    parameter; the service's `create_app` calls `wired.bind(app, x)`. This is how every route
    reaches its service's runtime: typed (mypy sees `X`), per app (tests run two replicas of a
    service in one process, so no module-level global), and with no import of the wiring
    module by the routes module (that import was a circle in two services). FastAPI's
    `dependency_overrides` is the per-app table of what a dependency resolves to; it is
    public API, and binding is the only use the product makes of it.
    """

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self) -> T:
        raise RuntimeError(f"{self.what} is not wired into this app: its create_app must bind it")

    def bind(self, app: FastAPI, value: T) -> None:
        def provide() -> T:
            return value

        app.dependency_overrides[self] = provide


def api_key_guard(runtime: ServiceRuntime) -> Callable[..., None]:
    """Dependency for management routes: a bearer key, compared in constant time."""

    def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        expected = runtime.settings.api_key
        if expected is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "management API disabled: set the service's API_KEY to enable it",
            )
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid API key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


def create_app(
    runtime: ServiceRuntime,
    *,
    routers: Sequence[APIRouter] = (),
    title: str | None = None,
    description: str = "",
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            shutdown_tracing()

    app = FastAPI(
        title=title or f"amc-{runtime.name}",
        description=description,
        lifespan=lifespan,
    )
    # A SERVER span per management call, continuing the caller's traceparent if it sent one;
    # work the call starts (a trigger, a collection, a cancel) belongs to that trace. Probes
    # and scrapes would only be noise. Headers are not recorded (the API key is one).
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="healthz,readyz,metrics",
        tracer_provider=trace.get_tracer_provider(),
        exclude_spans=["receive", "send"],
    )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str | int]:
        # The pid lets a launcher check that the process answering on a port is the one it
        # started, not another run's (./dev run refuses to call that "ready").
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        problems = await runtime.check_ready()
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        await runtime.refresh_gauges()
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    guard = Depends(api_key_guard(runtime))
    for router in routers:
        app.include_router(router, dependencies=[guard])
    return app
