"""The console's JSON API for machines (`amcctl dlq`): dead letters and their replay.

`Authorization: Bearer <API key>` (audited as "api-key"), or a browser's session cookie, in
which case a POST must carry the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.console import auth, replays
from services.console.web import ConsoleDep

router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"])


async def caller(request: Request, console: ConsoleDep) -> auth.Principal:
    if "authorization" in request.headers:
        principal = auth.bearer(console.settings, request)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal
    session = await auth.current(console.runtime, console.settings, request)
    if session is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in, or send Authorization: Bearer <API key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method != "GET":
        try:
            auth.check_csrf(session, request.headers.get("x-csrf-token"))
        except auth.CsrfRejected:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "missing or wrong X-CSRF-Token"
            ) from None
    return session


CallerDep = Annotated[auth.Principal, Depends(caller)]


@contextlib.asynccontextmanager
async def _broker_answers() -> AsyncIterator[None]:
    """A broker that cannot be reached (or stops answering mid-read) is a 503, not a 500."""
    try:
        yield
    except (KafkaError, TimeoutError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the dead letter topics cannot be read now ({type(exc).__name__})",
        ) from None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    letter_ids: list[str] = Field(
        min_length=1,
        max_length=replays.MAX_IDS,
        description="Letter ids as listed: <topic>.dlq/<partition>/<offset>",
    )
    force: bool = Field(default=False, description="Replay letters that were replayed before")


@router.get("")
async def list_dead_letters(
    console: ConsoleDep,
    _: CallerDep,
    topic: Annotated[
        str | None, Query(description="A contract topic, e.g. schedule.due (or its .dlq)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The newest letters, newest first, with who replayed them and when."""
    try:
        dlq = replays.dlq_name(topic) if topic else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    async with _broker_answers():
        found = await replays.listed(console.runtime.pool, console.dead_letters, dlq, limit)
    return {"letters": [x.as_json() for x in found], "limit": limit}


@router.post("/replay")
async def replay_dead_letters(
    body: ReplayRequest, console: ConsoleDep, principal: CallerDep
) -> dict[str, Any]:
    """Replay letters to their source topics (original key, payload and headers, plus
    `x-replay-of`). One result per id; a letter replayed before is refused
    (`already_replayed`) unless `force`."""
    async with _broker_answers():
        outcomes = await replays.replay(
            console.runtime.pool,
            console.dead_letters,
            principal.name,
            body.letter_ids,
            force=body.force,
        )
    return {
        "results": [
            {"letter_id": o.letter_id, "outcome": o.outcome, "detail": o.detail} for o in outcomes
        ]
    }
