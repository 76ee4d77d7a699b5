"""What every page handler uses: the console's parts, the signed-in operator, templates,
form parsing, and `act` (one audited change through a management API)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from services.console import auth, present, store
from services.console.backends import ApiProblem, Backends
from services.console.dead_letters import DeadLetters
from services.console.feed import LiveFeed
from services.console.settings import ConsoleSettings
from shared.http import Wired
from shared.runtime import ServiceRuntime

TEMPLATES = Path(__file__).with_name("templates")

# Fixed messages shown after a change (by key in the redirect's query), so a crafted link
# cannot make the console display text of someone else's choosing.
NOTICES = {
    "created": "Created.",
    "paused": "Paused.",
    "resumed": "Resumed.",
    "triggered": "Triggered: a manual run was requested.",
    "cancelled": "Cancel requested.",
    "retried": "Failed weeks were queued again.",
    "signed-out": "Signed out.",
}


@dataclass
class Console:
    runtime: ServiceRuntime
    settings: ConsoleSettings
    backends: Backends
    feed: LiveFeed
    templates: Environment
    dead_letters: DeadLetters


def make_templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when_for_viewer
    env.filters["size"] = present.size_text
    env.filters["window"] = present.window_text
    env.filters["run_window"] = present.run_window_text
    env.filters["parameter_rows"] = present.parameter_rows
    return env


def _when(value: Any) -> str:
    """Timestamps as the APIs give them (ISO 8601), shortened to the minute, in UTC."""
    if not value:
        return "—"
    text = str(value).replace("T", " ")
    return text[:16] + (" UTC" if text.endswith(("Z", "+00:00")) else "")


@pass_context
def _when_for_viewer(context: Context, value: Any) -> str:
    """Times in the zone the viewer chose (`?tz=Europe/London` on any page), else in UTC."""
    zone = context.get("tz")
    return when_in(value, zone) if zone else _when(value)


def when_in(value: Any, zone: str) -> str:
    """An ISO 8601 time in an IANA zone, to the minute, the zone named."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _when(value)
    if moment.tzinfo is None:
        return _when(value)
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def viewer_zone(request: Request) -> str | None:
    """The zone a page's `tz` query names, if it is a real IANA zone (else UTC is shown)."""
    name = request.query_params.get("tz")
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


# The console's routes need more than the runtime (templates, backends, feed), so what they
# reach through the wired dependency is the `Console`, which holds the runtime.
wired_console = Wired[Console]("the console")
ConsoleDep = Annotated[Console, Depends(wired_console)]


async def signed_in(request: Request, console: ConsoleDep) -> auth.Principal:
    principal = await auth.current(console.runtime, console.settings, request)
    if principal is None:
        raise auth.SignInRequired
    return principal


PrincipalDep = Annotated[auth.Principal, Depends(signed_in)]


async def _checked_form(request: Request, principal: PrincipalDep) -> dict[str, str]:
    """The urlencoded form of a POST, after its CSRF token was checked (the stdlib parses it:
    no multipart dependency for forms that never upload files)."""
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    auth.check_csrf(principal, form.pop("csrf", None))
    return form


# A POST's form, its CSRF token checked before the route runs; a route that needs only the
# check (its form has nothing else) names CSRF_CHECKED among its dependencies.
FormDep = Annotated[dict[str, str], Depends(_checked_form)]
CSRF_CHECKED = Depends(_checked_form)


def render(
    request: Request,
    console: Console,
    template: str,
    principal: auth.Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("done", ""))
    html = console.templates.get_template(template).render(
        request=request,
        principal=principal,
        csrf=principal.csrf if principal else "",
        notice=notice,
        path=request.url.path,
        tz=viewer_zone(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def render_form(
    request: Request,
    console: Console,
    template: str,
    principal: auth.Principal | None,
    values: dict[str, str],
    problem: ApiProblem | None = None,
    **context: Any,
) -> HTMLResponse:
    """A create form, filled with `values`; with the service's refusal, 422 and each field's
    error beside it (400 when the refusal names no field)."""
    return render(
        request,
        console,
        template,
        principal,
        status_code=422 if problem and problem.fields else (400 if problem else 200),
        values=values,
        problem=problem,
        errors=problem.fields if problem else {},
        **context,
    )


def see_other(url: str, done: str | None = None) -> RedirectResponse:
    if done:
        url += ("&" if "?" in url else "?") + urlencode({"done": done})
    return RedirectResponse(url, status_code=303)


async def audit(
    console: Console,
    principal: auth.Principal,
    action: str,
    target: str,
    problem: ApiProblem | None = None,
) -> None:
    outcome = "ok" if problem is None else f"refused ({problem.status})"
    async with console.runtime.pool.acquire() as conn:
        await store.audit(
            conn, principal.name, action, target, outcome, problem.message if problem else None
        )


async def act(
    console: Console,
    principal: auth.Principal,
    action: str,
    target: str,
    service: Any,
    path: str,
    body: Any = None,
) -> tuple[Any, ApiProblem | None]:
    """POST a change to a service and audit it, whatever the answer."""
    try:
        answer = await console.backends.post(service, path, body)
    except ApiProblem as problem:
        await audit(console, principal, action, target, problem)
        return None, problem
    await audit(console, principal, action, target)
    return answer, None


async def act_new(
    console: Console, principal: auth.Principal, service: Any, kind: str, label: str, body: Any
) -> tuple[Any, ApiProblem | None]:
    """POST a new item to a service's list (`/{kind}s`), audited as `{kind}.create` of
    `label`: what the service made of it, or its refusal."""
    return await act(console, principal, f"{kind}.create", label, service, f"/{kind}s", body)


async def act_on(
    console: Console, principal: auth.Principal, service: Any, kind: str, item: object, action: str
) -> ApiProblem | None:
    """POST `action` on one item of a service's list (`/{kind}s/{item}/{action}`), audited
    as `{kind}.{action}`; the service's refusal, if it refused."""
    path = f"/{kind}s/{item}/{action}"
    _, problem = await act(console, principal, f"{kind}.{action}", str(item), service, path)
    return problem


@dataclass(frozen=True)
class Pager:
    """Offset pagination links that keep the page's filters."""

    offset: int
    limit: int
    count: int
    total: int | None
    query: dict[str, str]

    def _link(self, offset: int) -> str:
        return "?" + urlencode({**self.query, "offset": str(offset)})

    @property
    def prev(self) -> str | None:
        return self._link(max(0, self.offset - self.limit)) if self.offset > 0 else None

    @property
    def next(self) -> str | None:
        more = (
            self.offset + self.count < self.total
            if self.total is not None
            else self.count >= self.limit
        )
        return self._link(self.offset + self.limit) if more else None

    @property
    def label(self) -> str:
        if self.count == 0:
            return "nothing to show"
        last = self.offset + self.count
        total = f" of {self.total}" if self.total is not None else ""
        page = f" (page {self.offset // self.limit + 1}"
        pages = f" of {max(1, math.ceil(self.total / self.limit))})" if self.total else ")"
        return f"{self.offset + 1}-{last}{total}{page}{pages}"


@dataclass(frozen=True)
class Listing:
    """What a list page was asked for: its filters (kept in its pager's links) and where
    its page starts."""

    query: dict[str, str]
    offset: int
    limit: int

    @classmethod
    def of(cls, request: Request, console: Console, *filter_names: str) -> Listing:
        return cls(filters(request, *filter_names), offset_of(request), console.settings.page_size)

    async def fetch(self, console: Console, service: Any, path: str) -> Any:
        """The page from a service's list endpoint, filtered as asked."""
        return await console.backends.get(
            service, path, **self.query, limit=self.limit, offset=self.offset
        )

    def render(
        self,
        request: Request,
        console: Console,
        template: str,
        principal: auth.Principal,
        items: list[Any],
        total: int | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The list page: its `items`, its filters (`query`) and its `pager`."""
        pager = Pager(self.offset, self.limit, len(items), total, self.query)
        return render(
            request,
            console,
            template,
            principal,
            items=items,
            query=self.query,
            pager=pager,
            **context,
        )


def filters(request: Request, *names: str) -> dict[str, str]:
    return {n: v for n in names if (v := request.query_params.get(n, "").strip())}


def offset_of(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        return 0
