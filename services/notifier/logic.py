"""Pure rules of the notifier: what an event says, which rules it matches, how the message
reads, when a failed delivery is tried again, and how a channel URL is shown. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from shared.channel_urls import is_hostname
from shared.contract import (
    CollectionCompleted,
    DeadLetter,
    ExecutionCompleted,
    OriginKind,
    SchedulePaused,
    TokenRefreshFailed,
)

DEAD_LETTER = "dead_letter"
EventType = Literal[
    "execution.completed",
    "token.refresh_failed",
    "schedule.paused",
    "collection.completed",
    "dead_letter",
]
EVENT_TYPES: tuple[str, ...] = (
    "execution.completed",
    "token.refresh_failed",
    "schedule.paused",
    "collection.completed",
    DEAD_LETTER,
)

Ids = list[str]


class RuleFilter(BaseModel):
    """Which events a rule sends. Every list that is given must contain the event's value;
    an empty list matches anything. An event without the attribute (a dead letter has no
    user) never matches a non-empty list for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_types: list[EventType] = Field(
        default_factory=list, description="execution.completed, token.refresh_failed, ..."
    )
    statuses: Ids = Field(
        default_factory=list,
        description="Execution status (FAILED, ...), collection status, REAUTH_REQUIRED / "
        "REFRESH_FAILED for tokens, PAUSED, DEAD_LETTER",
    )
    user_ids: Ids = Field(default_factory=list)
    instance_ids: Ids = Field(default_factory=list)
    schedule_ids: Ids = Field(
        default_factory=list,
        description="schedule.paused events; executions carry the schedule run, not the schedule",
    )
    collection_ids: Ids = Field(default_factory=list, description="collection.completed events")


class Severity(StrEnum):
    """How the message is flagged in its channel (apprise's notify types)."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True)
class Notice:
    """What an event says, in the terms rules filter on."""

    event_type: str
    status: str
    user_id: str | None = None
    instance_id: str | None = None
    schedule_id: str | None = None
    collection_id: str | None = None


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    severity: Severity


Notifiable = ExecutionCompleted | TokenRefreshFailed | SchedulePaused | CollectionCompleted


def notice_of(event: Notifiable | DeadLetter) -> Notice:
    if isinstance(event, ExecutionCompleted):
        return Notice(
            "execution.completed",
            event.status,
            user_id=event.user_id,
            instance_id=event.instance_id,
        )
    if isinstance(event, TokenRefreshFailed):
        status = "REAUTH_REQUIRED" if event.reauth_required else "REFRESH_FAILED"
        return Notice("token.refresh_failed", status, user_id=event.user_id)
    if isinstance(event, SchedulePaused):
        return Notice("schedule.paused", "PAUSED", schedule_id=str(event.schedule_id))
    if isinstance(event, CollectionCompleted):
        return Notice("collection.completed", event.status, collection_id=str(event.collection_id))
    return Notice(DEAD_LETTER, "DEAD_LETTER")


def _admits(wanted: Sequence[str], value: str | None) -> bool:
    return not wanted or (value is not None and value in wanted)


def matches(rule: RuleFilter, notice: Notice) -> bool:
    return (
        _admits(rule.event_types, notice.event_type)
        and _admits(rule.statuses, notice.status)
        and _admits(rule.user_ids, notice.user_id)
        and _admits(rule.instance_ids, notice.instance_id)
        and _admits(rule.schedule_ids, notice.schedule_id)
        and _admits(rule.collection_ids, notice.collection_id)
    )


# --- messages ----------------------------------------------------------------------------

_ORIGIN = {
    OriginKind.SCHEDULE: "schedule run",
    OriginKind.COLLECTION: "collection week",
    OriginKind.EXTERNAL: "external request",
}


def _reauthorize(user_id: str) -> str:
    return (
        f"re-authorize user {user_id}: `amcctl tokens register {user_id}` with a new refresh "
        "token, or the console's connect flow (Login with Amazon)"
    )


def _next_step(event: ExecutionCompleted) -> str:
    """What a person should do about a run that did not succeed, by AMC's error code."""
    assert event.error is not None
    code = event.error.code
    if code in ("REAUTH_REQUIRED", "UNKNOWN_USER"):
        return _reauthorize(event.user_id) + "; then run it again"
    if code == "RESULTS_EXPIRED":
        return (
            "AMC no longer holds the results (they were not downloaded in time): run the "
            "workflow again (`amcctl schedules trigger <schedule>` or "
            "`amcctl collections retry <collection>`)"
        )
    if code == "AMC_REJECTED":
        return (
            "AMC rejected the execution (its reason is above): fix what it names in the "
            "workflow, its parameters or the instance, then run it again; the poller does not "
            "retry a rejection"
        )
    if code == "RESULTS_NOT_DOWNLOADABLE":
        return (
            "the run succeeded at AMC but its results cannot be downloaded: fetch them where "
            "the message says they went (the instance's output bucket or AWS Clean Rooms); "
            "running it again would end the same way"
        )
    if code == "AMC_VALIDATION":
        return "AMC refused the query: fix the workflow's SQL or parameters, then run it again"
    if code == "AMC_ACCESS_DENIED":
        return (
            f"check in AMC that user {event.user_id} may use instance {event.instance_id}; "
            "if the grant changed, " + _reauthorize(event.user_id)
        )
    if code == "UNKNOWN_INSTANCE":
        instance = event.instance_id
        return f"register instance {instance}: `amcctl instances add {instance} ...`"
    if code == "SUBMISSION_UNKNOWN":
        return (
            f"look in AMC's execution list of instance {event.instance_id} before running "
            "again: the run may have started there"
        )
    if code in ("TIMED_OUT",) or event.status == "TIMED_OUT":
        return "the query ran out of time: narrow the time window or raise its timeout"
    if code == "CANCELLED" or event.status == "CANCELLED":
        return "nothing, unless the cancel was a mistake: then run it again"
    if event.error.retryable:
        return "a passing failure (AMC or storage unavailable): run it again later"
    return f"look at the poller's log for execution {event.execution_id}"


def _execution(event: ExecutionCompleted) -> Message:
    origin = f"{_ORIGIN[event.origin.kind]} {event.origin.id}"
    amc = f" (AMC execution {event.amc_execution_id})" if event.amc_execution_id else ""
    head = (
        f"Execution {event.execution_id}{amc} for {origin}, instance {event.instance_id}, "
        f"user {event.user_id}, ended {event.status}."
    )
    if event.status == "SUCCEEDED" and event.result is None:
        # A dry run: AMC checked the run and found it valid; it runs nothing, makes no result.
        return Message(
            f"AMC dry run passed on {event.instance_id}",
            f"{head}\nA dry run: AMC found the run valid; nothing ran, there is no result.",
            Severity.SUCCESS,
        )
    if event.status == "SUCCEEDED":
        assert event.result is not None
        r = event.result
        return Message(
            f"AMC run SUCCEEDED on {event.instance_id}",
            f"{head}\nResult: {r.uri} ({r.row_count} rows, {r.size_bytes} bytes).",
            Severity.SUCCESS,
        )
    assert event.error is not None
    return Message(
        f"AMC run {event.status} on {event.instance_id}: {event.error.code}",
        f"{head}\nError: {event.error.code}: {event.error.message}\n"
        f"What to do: {_next_step(event)}.",
        Severity.WARNING if event.status == "CANCELLED" else Severity.FAILURE,
    )


def _token(event: TokenRefreshFailed) -> Message:
    if event.reauth_required:
        return Message(
            f"User {event.user_id} must re-authorize",
            f"Login with Amazon refused the stored grant of user {event.user_id}: "
            f"{event.reason}\nTheir scheduled runs and collections fail until then.\n"
            f"What to do: {_reauthorize(event.user_id)}.",
            Severity.FAILURE,
        )
    return Message(
        f"Token refresh failing for user {event.user_id}",
        f"Refreshing the access token of user {event.user_id} keeps failing: {event.reason}\n"
        "What to do: the token service keeps retrying; if this lasts, check Login with "
        "Amazon's status and the service's LWA client credentials (`amcctl tokens status`).",
        Severity.WARNING,
    )


def _paused(event: SchedulePaused) -> Message:
    return Message(
        f"Schedule {event.schedule_id} paused",
        f"Schedule {event.schedule_id} was paused after {event.consecutive_failures} "
        f"consecutive failure(s): {event.reason}\n"
        f"What to do: see `amcctl schedules history {event.schedule_id}` for the failed runs, "
        f"fix the cause, then `amcctl schedules resume {event.schedule_id}`.",
        Severity.FAILURE,
    )


def _collection(event: CollectionCompleted) -> Message:
    counts = (
        f"{event.weeks_succeeded} of {event.weeks_total} week(s) succeeded, "
        f"{event.weeks_failed} failed"
    )
    if event.status == "COMPLETED":
        return Message(
            f"Collection {event.collection_id} completed",
            f"Collection {event.collection_id} completed: {counts}.",
            Severity.SUCCESS,
        )
    if event.status == "CANCELLED":
        return Message(
            f"Collection {event.collection_id} cancelled",
            f"Collection {event.collection_id} was cancelled: {counts}.",
            Severity.WARNING,
        )
    return Message(
        f"Collection {event.collection_id} completed with failures",
        f"Collection {event.collection_id} completed with failures: {counts}.\n"
        f"What to do: see `amcctl collections weeks {event.collection_id} --status FAILED` for "
        f"the errors, then `amcctl collections retry {event.collection_id}`.",
        Severity.FAILURE,
    )


def _dead_letter(letter: DeadLetter, topic: str) -> Message:
    key = f", key {letter.key}" if letter.key is not None else ""
    return Message(
        f"Message refused on {letter.source_topic}",
        f"{letter.consumer} could not process a message of {letter.source_topic} "
        f"(partition {letter.partition}, offset {letter.offset}{key}) and dead-lettered it "
        f"to {topic}.\nReason ({letter.error_type}): {letter.reason}\n"
        "What to do: fix the producer (or the consumer, if the message is valid), then "
        "publish the message again; the letter on the DLQ topic holds the original payload.",
        Severity.FAILURE,
    )


def render(event: Notifiable | DeadLetter, *, dlq_topic: str = "") -> Message:
    """The message people read: what happened, to what, AMC's error text, and what to do."""
    if isinstance(event, ExecutionCompleted):
        return _execution(event)
    if isinstance(event, TokenRefreshFailed):
        return _token(event)
    if isinstance(event, SchedulePaused):
        return _paused(event)
    if isinstance(event, CollectionCompleted):
        return _collection(event)
    return _dead_letter(event, dlq_topic or f"{event.source_topic}.dlq")


# --- delivery ------------------------------------------------------------------------------


def retry_delay(attempts: int, *, base_s: float, max_s: float) -> float:
    """Wait after the `attempts`-th failed try: base, doubling each time, capped."""
    if attempts < 1:
        return 0.0
    exponent = min(attempts - 1, 62)  # 2**62 s is already past any cap
    return min(max_s, base_s * math.pow(2, exponent))


def gives_up(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts


# --- channel URLs --------------------------------------------------------------------------


def channel_of(url: str) -> str:
    """The channel a URL speaks: its scheme (mailto, json, slack, ...), the metrics label."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and scheme else "unknown"


def redact(url: str) -> str:
    """What may be shown of a channel URL: scheme and host. Everything else (user, password,
    webhook tokens in the path, query, a token in the host's place) may be a secret."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    return f"{channel_of(url)}://{host if is_hostname(host) else '…'}/…"


def scrub(text: str, url: str) -> str:
    """Remove every part of a channel URL that may be secret from a text (an error message
    of the channel library), keeping the redacted form in its place."""
    placeholder = "\x00url\x00"  # kept out of reach of the replacements below
    out = text.replace(url, placeholder)
    try:
        parts = urlsplit(url)
        candidates = [parts.username, parts.password, *parts.path.split("/"), parts.query]
        candidates += [v for kv in parts.query.split("&") for v in kv.split("=")[1:]]
    except ValueError:
        candidates = []
    for secret in sorted({c for c in candidates if c and len(c) >= 4}, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out.replace(placeholder, redact(url))
