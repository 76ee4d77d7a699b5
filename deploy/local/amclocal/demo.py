"""The demo user and AMC instance the local run registers, so the README walkthrough works."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

DEMO_SQL = (
    "SELECT campaign, SUM(impressions) AS impressions, SUM(clicks) AS clicks\n"
    "FROM sponsored_ads_traffic\nGROUP BY campaign"
)


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


async def register_instance_and_workflow(
    poller_url: str, api_key: str, timeout_s: float = 60.0
) -> None:
    """Register the demo instance with the poller and push the demo workflow to the
    simulated AMC, as `amcctl instances add` and `amcctl workflows push` would. The push
    needs the demo user's access token, which the token service publishes shortly after
    start: it is retried until then."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=poller_url, timeout=10, headers=headers) as poller:
        added = await poller.post(
            "/instances",
            json={
                "instance_id": DEMO.instance_id,
                "advertiser_id": DEMO.advertiser_id,
                "marketplace_id": DEMO.marketplace_id,
                "user_id": DEMO.user_id,
                "name": "Local demo (simulated AMC)",
            },
        )
        if added.status_code != 409:  # registered by an earlier run: keep it
            added.raise_for_status()
        body = {"sql_query": DEMO_SQL, "author": "local demo"}
        deadline = time.monotonic() + timeout_s
        while True:
            pushed = await poller.put(
                f"/workflows/{DEMO.instance_id}/{DEMO.workflow_id}", json=body
            )
            if pushed.status_code != 503 or time.monotonic() > deadline:
                pushed.raise_for_status()
                return
            await asyncio.sleep(1.0)
