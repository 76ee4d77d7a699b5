"""Amazon Marketing Cloud reporting API: workflow executions and their result downloads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from shared.clients.errors import (
    ApiError,
    ResultsExpiredError,
    UnauthorizedError,
    error_from_response,
    transport_errors,
)
from shared.clients.http import HttpClientBase
from shared.contract.events import TimeWindowType

# What an expired pre-signed URL answers (S3 says 403, others 404 or 410).
_EXPIRED_STATUSES = frozenset({403, 404, 410})
_WINDOW_FORMAT = "%Y-%m-%dT%H:%M:%S"
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class AmcAccount:
    """Which AMC instance a call is for, and the advertiser and marketplace it belongs to."""

    instance_id: str
    advertiser_id: str
    marketplace_id: str


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """A run of a saved workflow. Start and end are only sent for EXPLICIT windows."""

    workflow_id: str
    time_window_type: TimeWindowType = TimeWindowType.EXPLICIT
    time_window_start: datetime | None = None
    time_window_end: datetime | None = None
    time_window_time_zone: str = "UTC"
    output_format: str = "CSV"
    parameter_values: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_body(self) -> dict[str, JsonValue]:
        body: dict[str, JsonValue] = {
            "workflowId": self.workflow_id,
            "timeWindowType": self.time_window_type.value,
            "timeWindowTimeZone": self.time_window_time_zone,
            "outputFormat": self.output_format,
            "parameterValues": dict(self.parameter_values),
        }
        if self.time_window_type is TimeWindowType.EXPLICIT:
            # Missing bounds are left out so that AMC itself names the problem.
            if self.time_window_start is not None:
                body["timeWindowStart"] = self._wall_time(self.time_window_start)
            if self.time_window_end is not None:
                body["timeWindowEnd"] = self._wall_time(self.time_window_end)
        return body

    def _wall_time(self, moment: datetime) -> str:
        """AMC reads the window as wall-clock time in timeWindowTimeZone."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(self.time_window_time_zone))
        return moment.strftime(_WINDOW_FORMAT)


class AmcStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self not in (AmcStatus.PENDING, AmcStatus.RUNNING)


class ExecutionInfo(BaseModel):
    """One workflow execution as AMC reports it."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    workflow_execution_id: str = Field(alias="workflowExecutionId", min_length=1)
    workflow_id: str = Field(alias="workflowId")
    status: AmcStatus
    creation_time: datetime | None = Field(default=None, alias="creationTime")
    time_window_start: datetime | None = Field(default=None, alias="timeWindowStart")
    time_window_end: datetime | None = Field(default=None, alias="timeWindowEnd")
    error_message: str | None = Field(
        default=None, validation_alias=AliasChoices("statusReason", "failureReason")
    )
    wait_until: datetime | None = Field(
        default=None, alias="waitUntil", description="Server's hint: nothing changes before this"
    )


class AmcClient(HttpClientBase):
    """The AMC reporting API for one application (client id). Does not retry."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        super().__init__(http)
        self._timeout = timeout

    async def create_execution(
        self, access_token: str, account: AmcAccount, request: ExecutionRequest
    ) -> ExecutionInfo:
        response = await self._call("POST", access_token, account, "", json=request.to_body())
        # AMC may answer with little more than the id; what we asked for fills the rest.
        defaults = {"workflowId": request.workflow_id, "status": AmcStatus.PENDING.value}
        body = _json(response)
        return _parse(ExecutionInfo, {**defaults, **body} if isinstance(body, dict) else body)

    async def get_execution(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> ExecutionInfo:
        response = await self._call("GET", access_token, account, _execution_path(amc_execution_id))
        return _parse(ExecutionInfo, _json(response))

    async def list_executions(
        self,
        access_token: str,
        account: AmcAccount,
        min_creation_time: datetime,
        max_creation_time: datetime,
    ) -> list[ExecutionInfo]:
        """Every execution created in [min, max], following AMC's nextToken pages."""
        params = {
            "minCreationTime": _utc_text(min_creation_time),
            "maxCreationTime": _utc_text(max_creation_time),
        }
        executions: list[ExecutionInfo] = []
        while True:
            response = await self._call("GET", access_token, account, "", params=params)
            page = _parse(_ExecutionPage, _json(response))
            executions.extend(page.executions)
            if not page.next_token:
                return executions
            params["nextToken"] = page.next_token

    async def cancel_execution(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> None:
        await self._call("DELETE", access_token, account, _execution_path(amc_execution_id))

    async def download_urls(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> list[str]:
        path = _execution_path(amc_execution_id) + "/downloadUrls"
        response = await self._call("GET", access_token, account, path)
        return _parse(_DownloadUrls, _json(response)).download_urls

    @asynccontextmanager
    async def stream_download(
        self, url: str, chunk_size: int = 64 * 1024
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a pre-signed result URL; the body comes as an iterator of chunks.

        No Authorization header: the signature is in the URL, which is itself a secret,
        so messages only name the service.
        """
        secrets = (urlsplit(url).query,)
        with transport_errors("AMC results", secrets):
            request = self._http.build_request("GET", url, timeout=self._timeout)
            response = await self._http.send(request, stream=True)
        try:
            if not response.is_success:
                with transport_errors("AMC results", secrets):
                    await response.aread()
                error = error_from_response(response, "AMC results", secrets)
                if response.status_code in _EXPIRED_STATUSES:
                    raise ResultsExpiredError(error.message, status=error.status, code=error.code)
                raise error
            yield _chunks(response, chunk_size, secrets)
        finally:
            await response.aclose()

    async def _call(
        self,
        method: str,
        access_token: str,
        account: AmcAccount,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: JsonValue = None,
    ) -> httpx.Response:
        """One request to .../workflowExecutions{path}; the 2xx response, else a typed error."""
        if not access_token.strip():
            # What AMC would answer; httpx would refuse the bare "Bearer " header instead.
            raise UnauthorizedError("AMC: no access token to send")
        url = (
            f"{self._base_url}/amc/reporting/{quote(account.instance_id, '')}"
            f"/workflowExecutions{path}"
        )
        headers = {
            "Amazon-Advertising-API-ClientId": self._client_id,
            "Authorization": f"Bearer {access_token}",
            "Amazon-Advertising-API-AdvertiserId": account.advertiser_id,
            "Amazon-Advertising-API-MarketplaceId": account.marketplace_id,
            "Accept": "application/json",
        }
        secrets = (access_token,)
        with transport_errors("AMC", secrets):
            response = await self._http.request(
                method, url, headers=headers, params=params, json=json, timeout=self._timeout
            )
        if not response.is_success:
            raise error_from_response(response, "AMC", secrets)
        return response


class _ExecutionPage(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_by_name=True)

    executions: list[ExecutionInfo] = Field(default_factory=list)
    next_token: str | None = Field(default=None, alias="nextToken")


class _DownloadUrls(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_by_name=True)

    download_urls: list[str] = Field(alias="downloadUrls")


def _execution_path(amc_execution_id: str) -> str:
    return f"/{quote(amc_execution_id, '')}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"AMC answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
        ) from None


def _parse(model: type[_Model], body: Any) -> _Model:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(f"AMC answered with an unexpected body: {where}: {first['msg']}") from None


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("creation time bounds must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _chunks(
    response: httpx.Response, chunk_size: int, secrets: tuple[str, ...]
) -> AsyncIterator[bytes]:
    with transport_errors("AMC results", secrets):
        async for chunk in response.aiter_bytes(chunk_size):
            yield chunk
