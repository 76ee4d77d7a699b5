"""Amazon Marketing Cloud reporting API: workflow executions and their result downloads.

Spoken as Amazon publishes it; docs/amc/workflow-management.openapi.json is the subset used
here, transcribed from Amazon's OpenAPI document, sample responses and Amazon's own client,
with each source named. Where those disagree (the execution at the top level of an answer,
or wrapped in `workflowExecution`), both shapes are read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shared.clients.amc_models import (
    LOCAL_FORMAT,
    AmcAccount,
    AmcAccountInfo,
    AmcInstanceInfo,
    DownloadUrls,
    ExecutionInfo,
    ExecutionPage,
    ExecutionRequest,
    SavedWorkflow,
    parse_answer,
)
from shared.clients.errors import (
    ApiError,
    ResultsExpiredError,
    UnauthorizedError,
    error_from_response,
    transport_errors,
)
from shared.clients.http import HttpClientBase

log = logging.getLogger(__name__)

# The media type of every workflowExecutions answer in Amazon's OpenAPI document and samples.
MEDIA_TYPE = "application/vnd.amcworkflowexecutions.v1+json"
_MEDIA_TYPES = {
    "workflowExecutions": MEDIA_TYPE,
    "workflows": "application/vnd.amcworkflows.v1+json",
}
# What a pre-signed S3 URL answers once expired or gone (S3 says 403; others 404 or 410).
_EXPIRED_STATUSES = frozenset({403, 404, 410})


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
        return ExecutionInfo.from_amc(_json(response))

    async def get_execution(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> ExecutionInfo:
        response = await self._call("GET", access_token, account, _execution_path(amc_execution_id))
        return ExecutionInfo.from_amc(_json(response))

    async def list_executions_page(
        self,
        access_token: str,
        account: AmcAccount,
        min_creation_time: datetime,
        max_creation_time: datetime,
        next_token: str | None = None,
    ) -> ExecutionPage:
        """One page of the executions created in [min, max] (second precision, in UTC),
        cancelled ones included, oldest first."""
        params = {
            "minCreationTime": _utc_local(min_creation_time),
            "maxCreationTime": _utc_local(max_creation_time),
            "timeZone": "UTC",
            "includeCancelled": "true",
            "sortAscending": "true",
        }
        if next_token:
            params["nextToken"] = next_token
        response = await self._call("GET", access_token, account, "", params=params)
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("executions", []), list):
            raise ApiError("AMC answered the execution list with an unexpected body")
        executions = [ExecutionInfo.from_amc(item) for item in body.get("executions", [])]
        token = body.get("nextToken")
        return ExecutionPage(executions, str(token) if token else None)

    async def list_executions(
        self,
        access_token: str,
        account: AmcAccount,
        min_creation_time: datetime,
        max_creation_time: datetime,
    ) -> list[ExecutionInfo]:
        """Every execution created in [min, max], following AMC's nextToken pages."""
        executions: list[ExecutionInfo] = []
        token: str | None = None
        while True:
            page = await self.list_executions_page(
                access_token, account, min_creation_time, max_creation_time, token
            )
            executions.extend(page.executions)
            if page.next_token is None:
                return executions
            token = page.next_token

    async def cancel_execution(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> None:
        """PUT {"status": "CANCELLED"} (UpdateWorkflowExecution), as Amazon's client does.
        AMC answers 400 for an execution that already ended."""
        await self._call(
            "PUT",
            access_token,
            account,
            _execution_path(amc_execution_id),
            json={"status": "CANCELLED"},
        )

    async def download_urls(
        self, access_token: str, account: AmcAccount, amc_execution_id: str
    ) -> DownloadUrls:
        path = _execution_path(amc_execution_id) + "/downloadUrls"
        response = await self._call("GET", access_token, account, path)
        answer = parse_answer(_DownloadUrls, _json(response))
        return DownloadUrls(answer.download_urls, answer.metadata_download_urls)

    # --- saved workflows (WorkflowManagementService: createWorkflow, updateWorkflow, ...) ---

    async def create_workflow(
        self, access_token: str, account: AmcAccount, workflow: SavedWorkflow
    ) -> None:
        """AMC answers 400 "Workflow with ID ... already exists." when it does."""
        await self._call(
            "POST", access_token, account, "", json=workflow.to_body(), resource="workflows"
        )

    async def update_workflow(
        self, access_token: str, account: AmcAccount, workflow: SavedWorkflow
    ) -> None:
        path = "/" + quote(workflow.workflow_id, "")
        await self._call(
            "PUT", access_token, account, path, json=workflow.to_body(), resource="workflows"
        )

    async def get_workflow(
        self, access_token: str, account: AmcAccount, workflow_id: str
    ) -> SavedWorkflow:
        path = "/" + quote(workflow_id, "")
        response = await self._call("GET", access_token, account, path, resource="workflows")
        return SavedWorkflow.from_amc(_json(response))

    async def list_workflows(self, access_token: str, account: AmcAccount) -> list[SavedWorkflow]:
        found: list[SavedWorkflow] = []
        params: dict[str, str] = {}
        while True:
            response = await self._call(
                "GET", access_token, account, "", params=params, resource="workflows"
            )
            body = _json(response)
            if not isinstance(body, dict) or not isinstance(body.get("workflows", []), list):
                raise ApiError("AMC answered the workflow list with an unexpected body")
            found += [SavedWorkflow.from_amc(item) for item in body.get("workflows", [])]
            token = body.get("nextToken")
            if not token:
                return found
            params["nextToken"] = str(token)

    async def delete_workflow(
        self, access_token: str, account: AmcAccount, workflow_id: str
    ) -> None:
        path = "/" + quote(workflow_id, "")
        await self._call("DELETE", access_token, account, path, resource="workflows")

    # --- AMC Administration API: what a user's token can see --------------------------------

    async def list_accounts(self, access_token: str) -> list[AmcAccountInfo]:
        found = [
            AmcAccountInfo(
                str(item.get("accountId") or ""),
                str(item.get("accountName") or ""),
                str(item.get("marketplaceId") or ""),
            )
            async for item in self._admin_pages(access_token, "/amc/accounts", "amcAccounts", {})
        ]
        return [a for a in found if a.account_id]

    async def list_instances(
        self, access_token: str, account_id: str, marketplace_id: str
    ) -> list[AmcInstanceInfo]:
        headers = {
            "Amazon-Advertising-API-AdvertiserId": account_id,
            "Amazon-Advertising-API-MarketplaceId": marketplace_id,
        }
        found = [
            _instance_info(item)
            async for item in self._admin_pages(
                access_token, "/amc/instances", "instances", headers
            )
        ]
        return [i for i in found if i.instance_id]

    async def _admin_pages(
        self, access_token: str, path: str, field: str, headers: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paged Administration API listing (nextToken)."""
        if not access_token.strip():
            raise UnauthorizedError("AMC: no access token to send")
        sent = {
            "Amazon-Advertising-API-ClientId": self._client_id,
            "Authorization": f"Bearer {access_token}",
            **headers,
        }
        params: dict[str, str] = {}
        secrets = (access_token,)
        while True:
            with transport_errors("AMC", secrets):
                response = await self._http.get(
                    self._base_url + path, headers=sent, params=params, timeout=self._timeout
                )
            if not response.is_success:
                raise error_from_response(response, "AMC", secrets)
            body = _json(response)
            items = body.get(field) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ApiError(f"AMC answered {path} with an unexpected body")
            for item in items:
                if isinstance(item, dict):
                    yield item
            token = body.get("nextToken")
            if not token:
                return
            params["nextToken"] = str(token)

    @asynccontextmanager
    async def stream_download(
        self, url: str, chunk_size: int = 64 * 1024
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a pre-signed result URL; the body comes as an iterator of chunks.

        No Authorization header: the signature is in the URL, which is itself a secret,
        so messages only name the service."""
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
        resource: str = "workflowExecutions",
    ) -> httpx.Response:
        """One request to .../{resource}{path}; the 2xx response, else a typed error."""
        if not access_token.strip():
            # What AMC would answer; httpx would refuse the bare "Bearer " header instead.
            raise UnauthorizedError("AMC: no access token to send")
        base = (account.base_url or self._base_url).rstrip("/")
        url = f"{base}/amc/reporting/{quote(account.instance_id, '')}/{resource}{path}"
        # The headers of Amazon's Postman collection and own client; Accept names the media
        # type Amazon's document gives every answer of these routes.
        headers = {
            "Amazon-Advertising-API-ClientId": self._client_id,
            "Authorization": f"Bearer {access_token}",
            "Amazon-Advertising-API-AdvertiserId": account.advertiser_id,
            "Amazon-Advertising-API-MarketplaceId": account.marketplace_id,
            "Accept": _MEDIA_TYPES[resource],
        }
        secrets = (access_token,)
        with transport_errors("AMC", secrets):
            response = await self._http.request(
                method, url, headers=headers, params=params, json=json, timeout=self._timeout
            )
        if not response.is_success:
            raise error_from_response(response, "AMC", secrets)
        return response


class _DownloadUrls(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_by_name=True)

    download_urls: list[str] = Field(alias="downloadUrls", max_length=5)
    metadata_download_urls: list[str] = Field(
        default_factory=list, alias="metadataDownloadUrls", max_length=5
    )


def _instance_info(item: dict[str, Any]) -> AmcInstanceInfo:
    endpoint, kind = item.get("apiEndpoint"), item.get("instanceType")
    return AmcInstanceInfo(
        str(item.get("instanceId") or ""),
        str(item.get("instanceName") or item.get("customerCanonicalName") or ""),
        str(endpoint) if endpoint else None,
        str(kind) if kind else None,
    )


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


def _utc_local(moment: datetime) -> str:
    """A creation-time filter: yyyy-MM-dd'T'HH:mm:ss in UTC (sent with timeZone=UTC)."""
    if moment.tzinfo is None:
        raise ValueError("creation time bounds must be timezone-aware")
    return moment.astimezone(UTC).strftime(LOCAL_FORMAT)


async def _chunks(
    response: httpx.Response, chunk_size: int, secrets: tuple[str, ...]
) -> AsyncIterator[bytes]:
    with transport_errors("AMC results", secrets):
        async for chunk in response.aiter_bytes(chunk_size):
            yield chunk
