from __future__ import annotations

import httpx

from amclocal.stack import SERVICE_NAMES, ServiceStack


async def test_every_service_is_ready_and_serves_metrics(stack: ServiceStack) -> None:
    async with httpx.AsyncClient() as client:
        for name in SERVICE_NAMES:
            ready = await client.get(f"{stack.url(name)}/readyz")
            metrics = await client.get(f"{stack.url(name)}/metrics")
            assert ready.json() == {"status": "ready"}, name
            assert "amc_outbox_backlog" in metrics.text, name


async def test_management_api_requires_the_key(stack: ServiceStack) -> None:
    async with httpx.AsyncClient() as client:
        refused = await client.get(f"{stack.url('poller')}/executions")
        wrong = await client.get(
            f"{stack.url('poller')}/executions", headers={"Authorization": "Bearer nope"}
        )
        allowed = await client.get(
            f"{stack.url('poller')}/executions",
            headers={"Authorization": f"Bearer {stack.keys['API_KEY']}"},
        )
    assert refused.status_code == 401
    assert wrong.status_code == 401
    assert allowed.status_code == 200
