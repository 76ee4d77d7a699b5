"""Management API under /notifications: rules (add, list, remove, test) and deliveries.

A rule's URL is a secret: it is read from the request, encrypted, and never returned.
Answers show its redacted form (scheme and host). Bad input is answered with 422 naming the
field, without echoing what was sent (pydantic's default error answer would echo the body,
URL included, so the body is validated here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from services.notifier import store
from services.notifier.channels import send, url_problem
from services.notifier.logic import Message, RuleFilter, Severity, channel_of, redact
from services.notifier.runtime import NotifierRuntime, RuntimeDep
from shared.crypto import DecryptionError

router = APIRouter(prefix="/notifications", tags=["notifications"])


class RuleCreate(BaseModel):
    """A rule: events matching `filter` are sent to the channel `url` (an apprise URL)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: SecretStr = Field(
        description="apprise URL: mailtos://user:pass@smtp.example.com?to=ops@example.com, "
        "slack://T/B/token, msteams://..., jsons://host/path, ...; kept encrypted",
    )
    filter: RuleFilter = Field(default_factory=RuleFilter)


class RuleOut(BaseModel):
    """A rule as answered, read from its store row (its `url` is the row's redacted URL)."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    channel: str = Field(description="The URL's scheme")
    url: str = Field(validation_alias="url_redacted", description="Redacted: scheme and host only")
    filter: RuleFilter
    created_at: datetime


class TestOut(BaseModel):
    rule_id: UUID
    channel: str
    ok: bool
    error: str = Field(description="Why the channel refused (secrets removed); empty if ok")


@dataclass(frozen=True)
class DeliveryOut(store.DeliveryRow):
    """A delivery as the API shows it: the stored row, field for field (one list of fields,
    so the two cannot drift apart)."""


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


async def _parse_rule(request: Request) -> RuleCreate:
    try:
        data = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid("(body)", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise _invalid("(body)", "must be a JSON object")
    try:
        rule = RuleCreate.model_validate(data)
    except ValidationError as exc:
        # loc and msg only: "input" could be the URL itself.
        raise RequestValidationError(
            [
                {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False, include_context=False)
            ]
        ) from None
    problem = url_problem(rule.url.get_secret_value())
    if problem is not None:
        raise _invalid("url", problem)
    return rule


async def _rule_or_404(runtime: NotifierRuntime, rule_id: UUID) -> store.RuleRow:
    async with runtime.pool.acquire() as conn:
        rule = await store.get_rule(conn, rule_id)
    if rule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule {rule_id} not found")
    return rule


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RuleCreate.model_json_schema()}},
        }
    },
)
async def add_rule(request: Request, runtime: RuntimeDep) -> RuleOut:
    rule = await _parse_rule(request)
    url = rule.url.get_secret_value()
    async with runtime.pool.acquire() as conn:
        row = await store.add_rule(
            conn,
            name=rule.name,
            channel=channel_of(url),
            url_redacted=redact(url),
            url_encrypted=runtime.keys.encrypt(url),
            rule_filter=rule.filter,
        )
    return RuleOut.model_validate(row)


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(runtime: RuntimeDep) -> list[RuleOut]:
    async with runtime.pool.acquire() as conn:
        return [RuleOut.model_validate(r) for r in await store.active_rules(conn)]


@router.get("/rules/{rule_id}", response_model=RuleOut)
async def show_rule(rule_id: UUID, runtime: RuntimeDep) -> RuleOut:
    return RuleOut.model_validate(await _rule_or_404(runtime, rule_id))


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_rule(rule_id: UUID, runtime: RuntimeDep) -> Response:
    """Remove a rule: its pending deliveries are cancelled and its URL erased."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await store.remove_rule(conn, rule_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"rule {rule_id} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/rules/{rule_id}/test", response_model=TestOut)
async def test_rule(rule_id: UUID, runtime: RuntimeDep) -> TestOut:
    """Send a sample message through the rule's channel now and report what happened."""
    rule = await _rule_or_404(runtime, rule_id)
    sample = Message(
        f"Test message for rule {rule.name!r}",
        f"This is a test of notification rule {rule.name} ({rule.id}) through "
        f"{rule.url_redacted}. If you read this, the channel works.",
        Severity.INFO,
    )
    try:
        url = runtime.keys.decrypt(rule.url_encrypted)
    except DecryptionError:
        return TestOut(
            rule_id=rule.id,
            channel=rule.channel,
            ok=False,
            error="rule URL cannot be decrypted with NOTIFIER_ENCRYPTION_KEYS",
        )
    outcome = await send(url, sample, timeout_s=runtime.notifier_settings.send_timeout_s)
    return TestOut(rule_id=rule.id, channel=rule.channel, ok=outcome.ok, error=outcome.error)


@router.get("/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    runtime: RuntimeDep,
    status_: Annotated[
        Literal["PENDING", "SENT", "FAILED", "CANCELLED"] | None, Query(alias="status")
    ] = None,
    rule_id: UUID | None = None,
    event_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """Recent deliveries, newest first."""
    async with runtime.pool.acquire() as conn:
        rows = await store.list_deliveries(
            conn, status=status_, rule_id=rule_id, event_id=event_id, limit=limit
        )
    return [DeliveryOut(**r.__dict__) for r in rows]
