"""The demo user and AMC instance the local run registers, so the README walkthrough works."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Demo:
    client_id: str = "amc-local-client"
    client_secret: str = "local-client-secret"
    user_id: str = "demo-user"
    refresh_token: str = "demo-refresh-token"
    instance_id: str = "amcdemo01"
    advertiser_id: str = "ENTITYDEMO01"
    marketplace_id: str = "ATVPDKIKX0DER"
    workflow_id: str = "demo-weekly-report"


DEMO = Demo()


async def register_demo(simulator_url: str, client_secret: str = DEMO.client_secret) -> None:
    """Teach the simulator the demo client (with this secret), user and instance (idempotent)."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as sim:
        for path, body in (
            (
                "/_sim/lwa/clients",
                {"client_id": DEMO.client_id, "client_secret": client_secret},
            ),
            ("/_sim/lwa/users", {"user_id": DEMO.user_id, "refresh_token": DEMO.refresh_token}),
            (
                "/_sim/amc/instances",
                {
                    "instance_id": DEMO.instance_id,
                    "advertiser_id": DEMO.advertiser_id,
                    "marketplace_id": DEMO.marketplace_id,
                },
            ),
        ):
            (await sim.post(path, json=body)).raise_for_status()


async def register_token(token_service_url: str, api_key: str) -> None:
    """Store the demo user's refresh token in the token service (its admin endpoint)."""
    async with httpx.AsyncClient(base_url=token_service_url, timeout=10) as token:
        response = await token.put(
            f"/tokens/{DEMO.user_id}",
            json={"refresh_token": DEMO.refresh_token},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        response.raise_for_status()
