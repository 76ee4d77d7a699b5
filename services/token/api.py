"""Management API: registration (/oauth, /tokens), inspection and key rotation.

Every route needs the service's bearer API key, the authorization-code exchange included:
the web front end's backend holds the key and calls /oauth/exchange from its OAuth redirect
handler; a browser must never call it directly. No response ever contains a token.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.token import logic, store
from services.token.refresher import refresh_channel
from services.token.rotation import rotate_keys
from services.token.runtime import RuntimeDep
from shared.clients.errors import ApiError, InvalidGrantError, UnauthorizedError
from shared.clients.lwa import LwaRegion
from shared.contract import TokenRefreshed

log = logging.getLogger(__name__)

TokenStatusName = Literal["ACTIVE", "REAUTH_REQUIRED"]


def _checked_user_id(value: str) -> str:
    problem = logic.user_id_problem(value)
    if problem:
        raise ValueError(f"invalid user_id: {problem}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeExchange(_Strict):
    user_id: str = Field(description="The front end's id of the user who authorized")
    code: SecretStr = Field(min_length=1, max_length=2000, description="LWA authorization code")
    redirect_uri: str = Field(
        min_length=1, max_length=2000, description="The redirect_uri the code was issued for"
    )
    region: LwaRegion = Field(
        default=LwaRegion.NA,
        description="The Login with Amazon region the user authorized in (NA, EU, FE): its "
        "token host exchanges the code and refreshes the tokens (Amazon's "
        "retrieve-access-token guide names one host per region)",
    )

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        return _checked_user_id(value)


class RefreshTokenRegistration(_Strict):
    refresh_token: SecretStr = Field(min_length=1, max_length=4000)
    region: LwaRegion = Field(
        default=LwaRegion.NA,
        description="The Login with Amazon region the user authorized in (NA, EU, FE): its "
        "token host exchanges the code and refreshes the tokens (Amazon's "
        "retrieve-access-token guide names one host per region)",
    )


class RotateKeysRequest(_Strict):
    after: str | None = Field(default=None, description="Cursor from the previous answer")
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    max_seconds: float = Field(default=10.0, gt=0, le=60, description="Work at most this long")


class TokenView(BaseModel):
    """A user's token state; never the tokens themselves."""

    user_id: str
    status: TokenStatusName
    expires_at: AwareDatetime | None
    last_refreshed_at: AwareDatetime | None
    consecutive_failures: int
    last_error: str | None
    next_attempt_at: AwareDatetime | None
    refresh_requested: bool
    region: LwaRegion = Field(description="Login with Amazon region whose host refreshes it")
    claimed_by: str | None = Field(description="Replica refreshing it now, if any")
    key_current: bool = Field(description="Encrypted under the newest storage key")
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TokenPage(BaseModel):
    items: list[TokenView]
    next_after: str | None = Field(description="Pass as `after` for the next page")


class Summary(BaseModel):
    total: int
    active: int
    reauth_required: int
    due: int = Field(description="Active tokens expiring within the refresh buffer")
    expired: int
    failing: int = Field(description="Active tokens whose last refresh attempts failed")
    requested: int = Field(description="Pending on-demand refreshes")
    claimed: int = Field(description="Tokens a replica is refreshing now")
    under_old_key: int = Field(description="Tokens still to re-encrypt (rotate-keys)")
    next_expiry: AwareDatetime | None
    refresh_interval_s: float
    refresh_buffer_s: float


class RotationAnswer(BaseModel):
    rotated: int
    undecryptable: int = Field(description="Rows no key opens; those users are REAUTH_REQUIRED")
    next_after: str | None = Field(description="Continue with this cursor; null: pass finished")
    remaining: int = Field(description="Rows still under an older key")


def _view(row: store.TokenRow, current_fp: str) -> TokenView:
    return TokenView.model_validate(
        {
            **asdict(row),
            "refresh_requested": row.refresh_requested_at is not None,
            "claimed_by": row.claimed_by if row.claim_held else None,
            "key_current": row.key_fp == current_fp,
        }
    )


router = APIRouter()

UserIdPath = Annotated[str, Path(min_length=1, max_length=256, description="User id")]


def _valid_path_user(user_id: str) -> str:
    problem = logic.user_id_problem(user_id)
    if problem:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"path.user_id: invalid user_id: {problem}"
        )
    return user_id


def _not_registered(user_id: str) -> str:
    return f"no token is registered for user {user_id!r}"


@router.post(
    "/oauth/exchange",
    tags=["registration"],
    response_model=TokenView,
    summary="Exchange an LWA authorization code and store the user's tokens",
    description=(
        "Called by the web front end's backend from its OAuth redirect handler, with the "
        "`code` and the `redirect_uri` the code was issued for. Requires the service API "
        "key like every management route: never call it from a browser. Stores the tokens "
        "encrypted, replaces an earlier authorization of the user (lifting "
        "REAUTH_REQUIRED) and publishes token.refreshed. 400: LWA refused the code; "
        "502: LWA could not be reached, failed, or rejected this service's credentials."
    ),
)
async def exchange(runtime: RuntimeDep, body: CodeExchange) -> TokenView:
    try:
        tokens = await runtime.lwa.exchange_code(
            body.code.get_secret_value(), body.redirect_uri, body.region
        )
    except InvalidGrantError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"LWA refused the authorization code: {exc}"
        ) from None
    except UnauthorizedError as exc:
        # invalid_client: this service's LWA credentials are wrong, not the caller's code.
        log.error("LWA rejected the service's client credentials: %s", exc)
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            "LWA rejected this service's client credentials (check TOKEN_LWA_CLIENT_ID "
            "and TOKEN_LWA_CLIENT_SECRET)",
        ) from None
    except ApiError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"LWA refused the exchange: {exc}"
            ) from None
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"LWA is unavailable, try again: {exc}"
        ) from None
    access = tokens.access_token.get_secret_value()
    issued_at = datetime.now(UTC)
    expires_at = tokens.expires_at(issued_at)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await store.store_grant(
            conn,
            body.user_id,
            refresh_token_enc=runtime.vault.storage.encrypt(
                tokens.refresh_token.get_secret_value()
            ),
            access_token_enc=runtime.vault.storage.encrypt(access),
            expires_at=expires_at,
            key_fp=runtime.vault.current_fp,
            region=body.region,
        )
        await runtime.outbox.enqueue(
            conn,
            TokenRefreshed(
                user_id=body.user_id,
                access_token_encrypted=runtime.vault.events.encrypt(access),
                expires_at=expires_at,
                issued_at=issued_at,
            ),
        )
        row = await store.get_token(conn, body.user_id)
    assert row is not None
    log.info("user %s authorized (authorization code exchanged)", body.user_id)
    return _view(row, runtime.vault.current_fp)


@router.put(
    "/tokens/{user_id}",
    tags=["registration"],
    response_model=TokenView,
    summary="Store a user's refresh token directly (admin)",
    description=(
        "Replaces any earlier grant of the user and lifts REAUTH_REQUIRED. The token is "
        "refreshed at LWA right away (asynchronously): watch `status` and `last_error`, or "
        "token.refreshed / token.refresh_failed. 201 when the user is new, else 200."
    ),
    responses={201: {"model": TokenView}},
)
async def put_refresh_token(
    runtime: RuntimeDep, user_id: UserIdPath, body: RefreshTokenRegistration, response: Response
) -> TokenView:
    _valid_path_user(user_id)
    async with runtime.pool.acquire() as conn, conn.transaction():
        created = await store.store_grant(
            conn,
            user_id,
            refresh_token_enc=runtime.vault.storage.encrypt(body.refresh_token.get_secret_value()),
            access_token_enc=None,
            expires_at=None,
            key_fp=runtime.vault.current_fp,
            region=body.region,
        )
        await conn.execute("SELECT pg_notify($1, $2)", refresh_channel(runtime.schema), user_id)
        row = await store.get_token(conn, user_id)
    assert row is not None
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    log.info("refresh token stored for user %s", user_id)
    return _view(row, runtime.vault.current_fp)


@router.get("/tokens", tags=["tokens"], response_model=TokenPage, summary="List users' tokens")
async def list_tokens(
    runtime: RuntimeDep,
    status_: Annotated[TokenStatusName | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="Last user_id of the previous page")] = None,
) -> TokenPage:
    async with runtime.pool.acquire() as conn:
        rows = await store.list_tokens(conn, limit=limit, after=after, status=status_)
    items = [_view(r, runtime.vault.current_fp) for r in rows]
    return TokenPage(items=items, next_after=items[-1].user_id if len(items) == limit else None)


@router.get("/tokens/summary", tags=["tokens"], response_model=Summary)
async def summary(runtime: RuntimeDep) -> Summary:
    async with runtime.pool.acquire() as conn:
        counts = await store.summary(
            conn, buffer_s=runtime.token_settings.refresh_buffer_s, key_fp=runtime.vault.current_fp
        )
    return Summary(
        **counts,
        refresh_interval_s=runtime.token_settings.refresh_interval_s,
        refresh_buffer_s=runtime.token_settings.refresh_buffer_s,
    )


@router.post(
    "/tokens/rotate-keys",
    tags=["keys"],
    response_model=RotationAnswer,
    summary="Re-encrypt stored tokens under the newest storage key",
    description=(
        "First put the new key first in TOKEN_ENCRYPTION_KEYS (old keys after it) on every "
        "replica. Each call works for at most `max_seconds`; call again with `next_after` "
        "until it is null. Safe to interrupt and to run while tokens are refreshed."
    ),
)
async def rotate(runtime: RuntimeDep, body: RotateKeysRequest | None = None) -> RotationAnswer:
    body = body or RotateKeysRequest()
    progress = await rotate_keys(
        runtime.pool,
        runtime.vault,
        runtime.outbox,
        after=body.after,
        batch_size=body.batch_size or runtime.token_settings.rotate_batch_size,
        max_seconds=body.max_seconds,
    )
    return RotationAnswer(**asdict(progress))


@router.get("/tokens/{user_id}", tags=["tokens"], response_model=TokenView)
async def get_token(runtime: RuntimeDep, user_id: UserIdPath) -> TokenView:
    async with runtime.pool.acquire() as conn:
        row = await store.get_token(conn, user_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _not_registered(user_id))
    return _view(row, runtime.vault.current_fp)


@router.delete(
    "/tokens/{user_id}",
    tags=["registration"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a user's tokens (later requests answer reauth_required)",
)
async def delete_token(runtime: RuntimeDep, user_id: UserIdPath) -> Response:
    async with runtime.pool.acquire() as conn:
        deleted = await store.delete_token(conn, user_id)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _not_registered(user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
