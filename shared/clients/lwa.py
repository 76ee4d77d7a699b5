"""Login with Amazon: exchange an authorization code or a refresh token for an access token."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from enum import StrEnum

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.clients.errors import (
    ApiError,
    ClientRequestError,
    InvalidGrantError,
    error_from_response,
    transport_errors,
)
from shared.clients.http import HttpClientBase

_GRANT_PATH = "/auth/o2/token"


class LwaRegion(StrEnum):
    """Login with Amazon's regions. Each has its own token host and authorization URL."""

    NA = "NA"
    EU = "EU"
    FE = "FE"


# Amazon Ads API guide "Retrieve access token" (guides/get-started/retrieve-access-token.md):
# "select the authorization URL for your region" for POST /auth/o2/token.
LWA_TOKEN_HOSTS: dict[LwaRegion, str] = {
    LwaRegion.NA: "https://api.amazon.com",
    LwaRegion.EU: "https://api.amazon.co.uk",
    LwaRegion.FE: "https://api.amazon.co.jp",
}
# Amazon Ads API guide "Create an authorization grant" (create-authorization-grant.md):
# "Login with Amazon implements a different authorization URL prefix for each region."
LWA_AUTHORIZE_URLS: dict[LwaRegion, str] = {
    LwaRegion.NA: "https://www.amazon.com/ap/oa",
    LwaRegion.EU: "https://eu.account.amazon.com/ap/oa",
    LwaRegion.FE: "https://apac.account.amazon.com/ap/oa",
}
# LWA's error codes that mean the grant itself is dead: only a person can fix that.
_REAUTH_CODES = frozenset({"invalid_grant", "unauthorized_client"})


class LwaTokens(BaseModel):
    """What LWA grants. Tokens are SecretStr so that a repr or a log line never shows them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    access_token: SecretStr
    refresh_token: SecretStr
    expires_in: float = Field(gt=0, description="Seconds the access token stays valid")

    def expires_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.expires_in)


class LwaGrants(ABC):
    """The two grants the services ask LWA for, whatever carries the request: a refresh and a
    code exchange, each with the app's credentials, whose secrets no error message shows."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self._client_id = client_id
        self._client_secret = client_secret

    async def refresh(self, refresh_token: str) -> LwaTokens:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self._grant(form, secrets=(refresh_token,))

    async def exchange_code(self, code: str, redirect_uri: str) -> LwaTokens:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return await self._grant(form, secrets=(code,))

    async def _grant(self, form: dict[str, str], secrets: tuple[str, ...]) -> LwaTokens:
        form = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        return await self._post(form, (*secrets, self._client_secret))

    @abstractmethod
    async def _post(self, form: dict[str, str], secrets: tuple[str, ...]) -> LwaTokens:
        """POST the form to LWA's token endpoint: its answer as tokens (`parse_grant`) or a
        typed error (`grant_error`), `secrets` redacted. No retry."""


class LwaClient(HttpClientBase, LwaGrants):
    """POST {base_url}/auth/o2/token over httpx. Does not retry: failures come out as typed
    errors."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        # Parsed once: httpx parses a string URL again on every call.
        self._token_url = httpx.URL(base_url.rstrip("/") + _GRANT_PATH)
        HttpClientBase.__init__(self, http)
        LwaGrants.__init__(self, client_id, client_secret)
        self._timeout = timeout

    async def _post(self, form: dict[str, str], secrets: tuple[str, ...]) -> LwaTokens:
        with transport_errors("LWA", secrets):
            response = await self._http.post(self._token_url, data=form, timeout=self._timeout)
        if not response.is_success:
            raise grant_error(response, secrets)
        return parse_grant(response.content, response.status_code, form.get("refresh_token"))


def grant_error(response: httpx.Response, secrets: tuple[str, ...]) -> ApiError:
    """The typed error for LWA's non-2xx answer (read already): a dead grant is its own type."""
    error = error_from_response(response, "LWA", secrets)
    if isinstance(error, ClientRequestError) and error.code in _REAUTH_CODES:
        return InvalidGrantError(error.message, status=error.status, code=error.code)
    return error


def parse_grant(content: bytes, status: int, sent_refresh_token: str | None) -> LwaTokens:
    """LWA's 2xx answer. A refresh answer may omit the refresh token: the one sent (None for
    a code exchange) stays valid."""
    try:
        body = json.loads(content)
        if isinstance(body, dict) and "refresh_token" not in body:
            body["refresh_token"] = sent_refresh_token
        return LwaTokens.model_validate(body)
    except ValueError:  # also pydantic's ValidationError, whose text may hold the tokens
        raise ApiError(f"LWA answered {status} with an unexpected body", status=status) from None
