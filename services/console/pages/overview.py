"""The overview: services' readiness, failed runs of the last day, users to re-authorize,
dead letters kept, and the live event feed (also served here, as text/event-stream, for
every page)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from services.console import charts, history
from services.console.backends import SERVICES, ApiProblem
from services.console.web import ConsoleDep, PrincipalDep, render

router = APIRouter()
KEEPALIVE_S = 15.0
CHART_DAYS = 30


async def _failed_last_day(console: Any) -> int | str:
    """FAILED runs completed in the last 24 h, counted by the poller (listing them to count
    took most of the page's time with 100,000 executions: bench/console)."""
    since = datetime.now(UTC) - timedelta(hours=24)
    try:
        answer = await console.backends.get(
            "poller", "/executions/count", status="FAILED", completed_after=since.isoformat()
        )
    except ApiProblem as problem:
        return f"unknown ({problem.message})"
    count: int = answer["count"]
    return count


async def _dead_letters(console: Any) -> int | str:
    """Letters the dlq topics keep, counted from their offsets (no record is read)."""
    try:
        count: int = await console.dead_letters.count()
    except (KafkaError, TimeoutError) as exc:
        return f"unknown ({type(exc).__name__})"
    return count


async def _runs_per_day(console: Any) -> charts.Chart | str:
    """Runs per UTC day and outcome over the last CHART_DAYS days, counted by the poller in
    one grouped query (`/executions/daily`)."""
    days = history.day_starts(datetime.now(UTC).date(), CHART_DAYS)
    try:
        answer = await console.backends.get("poller", "/executions/daily", days=CHART_DAYS)
    except ApiProblem as problem:
        return f"unknown ({problem.message})"
    return charts.runs_per_day(days, history.per_day(days, answer["days"]))


async def _daily_cap(console: Any) -> charts.Chart | str:
    """Each instance's executions today against its daily cap (`GET /instances/{id}`)."""
    try:
        listed = await console.backends.instances()
        detail = await asyncio.gather(
            *(console.backends.instance(i["instance_id"]) for i in listed)
        )
    except ApiProblem as problem:
        return f"unknown ({problem.message})"
    return charts.daily_cap(history.cap_rows(detail))


@router.get("/charts.css")
async def charts_css() -> Response:
    """The charts' styles (pygal's own), as a stylesheet: the CSP allows no inline style.
    Public like /static: it holds nothing but colours and fonts."""
    return Response(
        charts.stylesheet(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, console: ConsoleDep, principal: PrincipalDep) -> HTMLResponse:
    readiness, failed, dead_letters, per_day, cap = await asyncio.gather(
        asyncio.gather(*(console.backends.ready(s) for s in SERVICES)),
        _failed_last_day(console),
        _dead_letters(console),
        _runs_per_day(console),
        _daily_cap(console),
    )
    try:
        tokens = await console.backends.get("token", "/tokens/summary")
    except ApiProblem as problem:
        tokens = {"error": problem.message}
    return render(
        request,
        console,
        "overview.html",
        principal,
        services=list(zip(SERVICES, readiness, strict=True)),
        failed=failed,
        dead_letters=dead_letters,
        tokens=tokens,
        per_day=per_day,
        cap=cap,
        recent=list(console.feed.recent),
    )


@router.get("/events")
async def events(request: Request, console: ConsoleDep, _: PrincipalDep) -> StreamingResponse:
    """Server-sent events for the browser's EventSource: one `data:` line per event."""

    async def stream() -> AsyncIterator[str]:
        async with console.feed.subscribe() as queue:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"  # proxies close idle streams
                    continue
                yield f"data: {json.dumps(event)}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
