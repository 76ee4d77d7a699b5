"""POST /auth/o2/token, as Login with Amazon answers it.

LWA has a token host per region (api.amazon.com, api.amazon.co.uk, api.amazon.co.jp: Amazon's
retrieve-access-token guide). One simulator stands in for all three: /auth/o2/token is NA's,
and /lwa/eu/auth/o2/token and /lwa/fe/auth/o2/token (paths of the simulator's own, not
Amazon's) are EU's and FE's, so that the request log shows which host a client used. Whether
LWA's hosts refuse one another's grants is not published, so all three answer alike.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amclocal.simulator.config import RouteKind
from amclocal.simulator.gate import inject_faults, record_of
from amclocal.simulator.identity import LwaError
from amclocal.simulator.state import SimState


def lwa_router(state: SimState) -> APIRouter:
    router = APIRouter()

    @router.post("/auth/o2/token")
    @router.post("/lwa/eu/auth/o2/token")
    @router.post("/lwa/fe/auth/o2/token")
    async def token(request: Request) -> JSONResponse:
        record_of(request).kind = RouteKind.TOKEN
        if (failure := await inject_faults(state, RouteKind.TOKEN)) is not None:
            raise failure  # LWA faults all answer before the request takes effect
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            issued = state.identity.grant(form, state.now(), state.config)
        except LwaError as error:
            return JSONResponse(
                {"error": error.error, "error_description": error.description},
                status_code=error.status,
            )
        ttl = issued.expires_in
        return JSONResponse(
            {
                "access_token": issued.access_token,
                "refresh_token": issued.refresh_token,
                "token_type": "bearer",
                "expires_in": int(ttl) if ttl.is_integer() else ttl,
            },
            headers={"Cache-Control": "no-store"},
        )

    return router
