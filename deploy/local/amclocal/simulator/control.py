"""A typed client of the /_sim control API, for tests and local set-up scripts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter

from amclocal.simulator.config import (
    ClientRegistration,
    CodeRegistration,
    FaultRule,
    InstanceRegistration,
    RouteKind,
    SimConfig,
    UserRegistration,
    WorkflowBehavior,
)
from amclocal.simulator.executions import ExecutionView
from amclocal.simulator.requestlog import RequestRecord, Stats
from shared.clients.http import HttpClientBase

_RECORDS = TypeAdapter(list[RequestRecord])
_EXECUTIONS = TypeAdapter(list[ExecutionView])


@dataclass(frozen=True)
class SimAccount:
    """One ready-to-use identity: an LWA app, a user's refresh token and an AMC instance."""

    client_id: str
    client_secret: str
    user_id: str
    refresh_token: str
    instance_id: str
    advertiser_id: str
    marketplace_id: str


class SimControl(HttpClientBase):
    def __init__(self, base_url: str, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        super().__init__(http, timeout=10.0)

    async def reset(self) -> None:
        await self._post("/reset")

    async def configure(self, **changes: Any) -> SimConfig:
        return SimConfig.model_validate(await self._post("/config", changes))

    async def config(self) -> SimConfig:
        return SimConfig.model_validate(await self._get("/config"))

    async def register_client(self, client_id: str, client_secret: str) -> None:
        await self._post(
            "/lwa/clients", ClientRegistration(client_id=client_id, client_secret=client_secret)
        )

    async def register_user(
        self, user_id: str, refresh_token: str, client_id: str | None = None
    ) -> None:
        reg = UserRegistration(user_id=user_id, refresh_token=refresh_token, client_id=client_id)
        await self._post("/lwa/users", reg)

    async def register_code(self, code: str, user_id: str, redirect_uri: str) -> None:
        reg = CodeRegistration(code=code, user_id=user_id, redirect_uri=redirect_uri)
        await self._post("/lwa/codes", reg)

    async def revoke_user(self, user_id: str) -> None:
        await self._post(f"/lwa/users/{user_id}/revoke")

    async def revoke_access_tokens(self, user_id: str) -> int:
        """Withdraw the user's access tokens before their expiry (the refresh token stays
        good); returns how many were withdrawn."""
        answer = await self._post(f"/lwa/users/{user_id}/revoke-access-tokens")
        return int(answer["revoked"])

    async def expire_access_tokens(self, user_id: str) -> int:
        answer = await self._post(f"/lwa/users/{user_id}/expire-access-tokens")
        return int(answer["expired"])

    async def register_instance(
        self,
        instance_id: str,
        advertiser_id: str,
        marketplace_id: str,
        allowed_users: list[str] | None = None,
        sandbox: bool = False,
    ) -> None:
        reg = InstanceRegistration(
            instance_id=instance_id,
            advertiser_id=advertiser_id,
            marketplace_id=marketplace_id,
            allowed_users=allowed_users,
            sandbox=sandbox,
        )
        await self._post("/amc/instances", reg)

    async def set_workflow(self, behavior: WorkflowBehavior) -> None:
        await self._post("/amc/workflows", behavior)

    async def expire_results(self, execution_id: str) -> None:
        await self._post(f"/amc/executions/{execution_id}/expire-results")

    async def reject_execution(self, execution_id: str, reason: str) -> None:
        """End a PENDING or RUNNING execution REJECTED now, `reason` as its statusReason."""
        await self._post(f"/amc/executions/{execution_id}/reject", {"reason": reason})

    async def add_fault(self, rule: FaultRule) -> None:
        await self._post("/faults", rule)

    async def clear_faults(self) -> None:
        response = await self._http.delete(self.base_url + "/_sim/faults")
        response.raise_for_status()

    async def requests(
        self, instance_id: str | None = None, kind: RouteKind | None = None
    ) -> list[RequestRecord]:
        params = {"instance_id": instance_id, "kind": kind.value if kind else None}
        query = {k: v for k, v in params.items() if v is not None}
        return _RECORDS.validate_python(await self._get("/requests", query))

    async def contract_violations(self) -> list[str]:
        """Exchanges that did not match AMC's published API (docs/amc), since the reset."""
        return [str(v) for v in await self._get("/contract-violations")]

    async def stats(self) -> Stats:
        return Stats.model_validate(await self._get("/stats"))

    async def executions(self, instance_id: str | None = None) -> list[ExecutionView]:
        query = {"instance_id": instance_id} if instance_id else {}
        return _EXECUTIONS.validate_python(await self._get("/executions", query))

    async def provision(
        self,
        *,
        client_id: str = "amzn1.application-oa2-client.sim",
        client_secret: str | None = None,
        user_id: str = "user-1",
        refresh_token: str | None = None,
        instance_id: str = "amcsim0001",
        advertiser_id: str = "ENTITYSIM0001",
        marketplace_id: str = "ATVPDKIKX0DER",
    ) -> SimAccount:
        """Register an app, a user and an instance that the user may use, in one call.
        Secrets left out are made up at random."""
        client_secret = client_secret or secrets.token_urlsafe(16)
        refresh_token = refresh_token or "Atzr|" + secrets.token_urlsafe(32)
        await self.register_client(client_id, client_secret)
        await self.register_user(user_id, refresh_token)
        await self.register_instance(instance_id, advertiser_id, marketplace_id)
        return SimAccount(
            client_id,
            client_secret,
            user_id,
            refresh_token,
            instance_id,
            advertiser_id,
            marketplace_id,
        )

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = await self._http.get(f"{self.base_url}/_sim{path}", params=params)
        response.raise_for_status()
        return response.json()

    async def _post(self, path: str, body: Any = None) -> Any:
        payload = body.model_dump(mode="json") if hasattr(body, "model_dump") else body
        response = await self._http.post(f"{self.base_url}/_sim{path}", json=payload)
        response.raise_for_status()
        return response.json()
