"""Sending through apprise, the one place that knows the channel library.

Apprise already speaks Slack, Microsoft Teams, email (SMTP), JSON webhooks and about a
hundred more services behind one URL syntax; writing and keeping those clients ourselves
would be most of this service. Everything apprise says back is scrubbed of the URL's secret
parts before it reaches a log line, a database row or an API answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import apprise

from services.notifier.logic import Message, Severity, scrub

log = logging.getLogger(__name__)

_NOTIFY_TYPES = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.SUCCESS: apprise.NotifyType.SUCCESS,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.FAILURE: apprise.NotifyType.FAILURE,
}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""  # scrubbed: safe to log and show


def url_problem(url: str) -> str | None:
    """Why apprise cannot use this URL, or None. Parsing only: nothing is sent."""
    if "://" not in url:
        return "must be an apprise URL such as mailtos://..., slack://..., jsons://..."
    if apprise.Apprise.instantiate(url) is None:
        return "apprise does not recognise this URL (unknown scheme or missing parts)"
    return None


async def send(url: str, message: Message, *, timeout_s: float) -> Outcome:
    """Send one message through one channel; never raises for a channel's failure."""
    service = apprise.Apprise()
    if not service.add(url):
        return Outcome(False, "apprise does not recognise this URL")
    try:
        async with asyncio.timeout(timeout_s):
            result = await service.async_notify(
                body=message.body,
                title=message.title,
                notify_type=_NOTIFY_TYPES[message.severity],
                body_format=apprise.NotifyFormat.TEXT,
            )
    except TimeoutError:
        return Outcome(False, f"no answer within {timeout_s:g} s")
    except Exception as exc:  # a library bug must fail this delivery, not the sender loop
        return Outcome(False, scrub(f"{type(exc).__name__}: {exc}", url))
    if result:
        return Outcome(True)
    details = "; ".join(entry.message for entry in result.logs()) or "the channel refused"
    return Outcome(False, scrub(details, url)[:2000])
