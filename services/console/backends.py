"""The services' management APIs as the console calls them: server-side, with the API key.

Every answer that is not 2xx becomes an `ApiProblem` carrying the status and a readable
message built from the service's `detail` (FastAPI's 422 list is turned into "field: message"
lines). The request's input values are never echoed back: a refused form may hold a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from services.console.settings import ConsoleSettings

Service = Literal["token", "poller", "scheduler", "collector", "notifier"]
SERVICES: tuple[Service, ...] = ("token", "poller", "scheduler", "collector", "notifier")


@dataclass
class ApiProblem(Exception):
    service: str
    status: int
    message: str
    # Field name -> message, for 422s: a form shows each next to its input.
    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.service} answered {self.status}: {self.message}"


def _problem(service: str, response: httpx.Response) -> ApiProblem:
    try:
        body: Any = response.json()
    except ValueError:
        return ApiProblem(service, response.status_code, response.reason_phrase)
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        fields: dict[str, str] = {}
        for item in detail:
            if not isinstance(item, dict):
                continue
            loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
            fields[".".join(loc) or "request"] = str(item.get("msg", "invalid"))
        message = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return ApiProblem(service, response.status_code, message, fields)
    return ApiProblem(service, response.status_code, str(detail))


def _seg(value: str) -> str:
    return quote(value, safe="")


class Backends:
    """One pooled HTTP client for all five services."""

    def __init__(
        self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None
    ):
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self.urls: dict[str, str] = {
            "token": settings.token_url,
            "poller": settings.poller_url,
            "scheduler": settings.scheduler_url,
            "collector": settings.collector_url,
            "notifier": settings.notifier_url,
        }
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {key}"},
            timeout=settings.api_timeout_s,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        url = self.urls[service].rstrip("/") + path
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self._http.request(method, url, params=clean, json=json)
        except httpx.HTTPError as exc:
            raise ApiProblem(
                service, 503, f"cannot reach the {service} service ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise _problem(service, response)
        return response.json() if response.content else None

    async def stream(
        self, service: Service, path: str, *, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """A GET whose body is not read yet: the caller passes `aiter_bytes()` on and must
        `aclose()` the response. A refusal is read whole (it is a short JSON) and raised."""
        url = self.urls[service].rstrip("/") + path
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        request = self._http.build_request("GET", url, params=clean)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ApiProblem(
                service, 503, f"cannot reach the {service} service ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise _problem(service, response)
        return response

    async def get(self, service: Service, path: str, **params: Any) -> Any:
        return await self.call(service, "GET", path, params=params)

    async def post(self, service: Service, path: str, body: Any = None) -> Any:
        return await self.call(service, "POST", path, json=body)

    # Reads of the registry pages. Ids go into paths quoted: an instance or workflow id is
    # the operator's text and must not add path segments.

    async def instances(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = (await self.get("poller", "/instances"))["instances"]
        return answer

    async def instance(self, instance_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.get("poller", f"/instances/{_seg(instance_id)}")
        return answer

    async def workflows(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's saved workflows (the poller asks AMC), with versions pushed."""
        answer = await self.get("poller", f"/workflows/{_seg(instance_id)}")
        workflows: list[dict[str, Any]] = answer["workflows"]
        return workflows

    async def workflow(self, instance_id: str, workflow_id: str) -> dict[str, Any]:
        path = f"/workflows/{_seg(instance_id)}/{_seg(workflow_id)}"
        answer: dict[str, Any] = await self.get("poller", path)
        return answer

    async def rules(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = await self.get("notifier", "/notifications/rules")
        return answer

    async def rule(self, rule_id: str) -> dict[str, Any]:
        path = f"/notifications/rules/{_seg(rule_id)}"
        answer: dict[str, Any] = await self.get("notifier", path)
        return answer

    async def ready(self, service: Service) -> tuple[bool, str]:
        """A service's /readyz: (ready, what it said), never raising."""
        try:
            response = await self._http.get(self.urls[service].rstrip("/") + "/readyz", timeout=3)
        except httpx.HTTPError as exc:
            return False, f"unreachable ({type(exc).__name__})"
        if response.status_code == 200:
            return True, "ready"
        try:
            problems = response.json().get("problems", {})
        except ValueError:
            problems = {}
        return False, ", ".join(f"{k}: {v}" for k, v in problems.items()) or str(
            response.status_code
        )
