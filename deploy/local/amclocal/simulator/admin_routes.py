"""AMC's Administration API, the two listings the poller's discovery reads (docs/amc; Amazon's
AMCAdministration OpenAPI document: AmcpLinkListAmcAccounts, listInstances; Amazon's
Postman samples): the accounts a user's token can see, and an account's instances.

`instanceType` (STANDARD, or SANDBOX here) is in Amazon's sample answer, not in its OpenAPI
document; SANDBOX as the sandbox value is this simulator's choice (not documented).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amclocal.simulator.answers import amc_error, check_accept
from amclocal.simulator.config import RouteKind
from amclocal.simulator.executions import Instance
from amclocal.simulator.gate import inject_faults, record_of
from amclocal.simulator.identity import AccessGrant
from amclocal.simulator.state import SimState

ACCOUNTS_MEDIA_TYPE = "application/vnd.amcaudiencesconnections.v1+json"
INSTANCES_MEDIA_TYPE = "application/vnd.amcinstances.v1+json"


def admin_router(state: SimState) -> APIRouter:
    # Imported here: amc_routes imports this module's router too.
    from amclocal.simulator.amc_routes import authenticate

    router = APIRouter()

    async def visible(request: Request, media_type: str) -> tuple[AccessGrant, list[Instance]]:
        record_of(request).kind = RouteKind.ADMIN
        if (late := await inject_faults(state, RouteKind.ADMIN)) is not None:
            raise late
        check_accept(request, media_type)
        grant = authenticate(state, request, state.now())
        mine = [
            i
            for i in state.amc.instances.values()
            if i.allowed_users is None or grant.user_id in i.allowed_users
        ]
        return grant, mine

    @router.get("/amc/accounts")
    async def accounts(request: Request) -> JSONResponse:
        _, mine = await visible(request, ACCOUNTS_MEDIA_TYPE)
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for i in mine:
            seen.setdefault(
                (i.advertiser_id, i.marketplace_id),
                {
                    "accountId": i.advertiser_id,
                    "accountName": f"AMC account {i.advertiser_id}",
                    "marketplaceId": i.marketplace_id,
                },
            )
        return JSONResponse({"amcAccounts": list(seen.values())}, media_type=ACCOUNTS_MEDIA_TYPE)

    @router.get("/amc/instances")
    async def instances(request: Request) -> JSONResponse:
        _, mine = await visible(request, INSTANCES_MEDIA_TYPE)
        account = request.headers.get("Amazon-Advertising-API-AdvertiserId")
        marketplace = request.headers.get("Amazon-Advertising-API-MarketplaceId")
        if not account or not marketplace:
            raise amc_error(
                400,
                "BAD_REQUEST",
                "Amazon-Advertising-API-AdvertiserId and -MarketplaceId headers are required",
                INSTANCES_MEDIA_TYPE,
            )
        base = str(request.base_url).rstrip("/")
        listed = [
            {
                "instanceId": i.instance_id,
                "instanceName": i.name or i.instance_id,
                "instanceType": "SANDBOX" if i.sandbox else "STANDARD",
                "apiEndpoint": base,
                "awsAccountId": "",
                "creationDatetime": "2024-03-29T08:12:11.572511Z",
                "creationStatus": "COMPLETED",
                "dataUploadAwsAccountId": "811639200769",
                "entities": ["NA"],
                "s3BucketName": f"amc-{i.instance_id}",
                "s3BucketRegion": "us-east-1",
            }
            for i in mine
            if (i.advertiser_id, i.marketplace_id) == (account, marketplace)
        ]
        return JSONResponse({"instances": listed}, media_type=INSTANCES_MEDIA_TYPE)

    return router
