"""Dead letters: the newest letters per topic with their reason, and replaying chosen ones."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.console import auth, replays
from services.console.dead_letters import DLQ_TOPICS
from services.console.web import ConsoleDep, PrincipalDep, render

router = APIRouter(prefix="/dead-letters")

LIMITS = (50, 200, 500)
SOURCES = tuple(t.removesuffix(".dlq") for t in DLQ_TOPICS)


def _limit(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) in LIMITS else LIMITS[0]


async def _page(
    request: Request,
    console: ConsoleDep,
    principal: auth.Principal,
    topic: str,
    limit: int,
    outcomes: list[replays.Outcome] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    error: str | None = None
    letters: list[Any] = []
    try:
        dlq = replays.dlq_name(topic) if topic else None
        letters = await replays.listed(console.runtime.pool, console.dead_letters, dlq, limit)
    except ValueError:
        error = "Unknown topic."
    except (KafkaError, TimeoutError) as exc:
        error = f"The dead letter topics cannot be read now ({type(exc).__name__})."
    return render(
        request,
        console,
        "dead_letters.html",
        principal,
        status_code=status_code if error is None else 503,
        letters=letters,
        topic=topic,
        limit=limit,
        limits=LIMITS,
        sources=SOURCES,
        error=error,
        outcomes=outcomes or [],
    )


def _first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


@router.get("", response_class=HTMLResponse)
async def list_letters(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    q = request.query_params
    return await _page(
        request, console, principal, q.get("topic", "").strip(), _limit(q.get("limit"))
    )


@router.post("/replay", response_class=HTMLResponse)
async def replay_letters(
    request: Request, console: ConsoleDep, principal: PrincipalDep
) -> HTMLResponse:
    # Parsed here rather than as a FormDep: the checkboxes repeat one name.
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    auth.check_csrf(principal, _first(form, "csrf"))
    topic = _first(form, "topic").strip()
    limit = _limit(_first(form, "limit"))
    chosen = form.get("letter", [])[: replays.MAX_IDS]
    if not chosen:
        outcomes = [replays.Outcome("", "invalid", "Choose at least one letter.")]
        return await _page(request, console, principal, topic, limit, outcomes, 400)
    outcomes = await replays.replay(
        console.runtime.pool,
        console.dead_letters,
        principal.name,
        chosen,
        force=form.get("force") == ["yes"],
    )
    refused = any(not o.ok for o in outcomes)
    return await _page(request, console, principal, topic, limit, outcomes, 409 if refused else 200)
