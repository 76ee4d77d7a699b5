"""The notifier's pure rules: matching, messages, retry delays, URL redaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.notifier.logic import (
    Notice,
    RuleFilter,
    Severity,
    channel_of,
    gives_up,
    matches,
    notice_of,
    redact,
    render,
    retry_delay,
    scrub,
)
from shared.contract import (
    CollectionCompleted,
    DeadLetter,
    ExecutionCompleted,
    ExecutionError,
    Origin,
    OriginKind,
    SchedulePaused,
    TokenRefreshFailed,
)


def _failed(code: str = "AMC_FAILED", *, retryable: bool = False) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=uuid4(),
        origin=Origin(kind=OriginKind.COLLECTION, id=str(uuid4())),
        status="FAILED",
        amc_execution_id="amc-1",
        instance_id="inst-1",
        user_id="bob",
        error=ExecutionError(code=code, message="AMC says no", retryable=retryable),
    )


FAILED_X = Notice("execution.completed", "FAILED", user_id="bob", instance_id="inst-x")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (RuleFilter(), True),
        (RuleFilter(event_types=["execution.completed"]), True),
        (RuleFilter(event_types=["schedule.paused"]), False),
        (RuleFilter(statuses=["FAILED", "TIMED_OUT"]), True),
        (RuleFilter(statuses=["SUCCEEDED"]), False),
        (RuleFilter(instance_ids=["inst-x"], statuses=["FAILED"]), True),
        (RuleFilter(instance_ids=["inst-y"], statuses=["FAILED"]), False),
        (RuleFilter(user_ids=["bob"]), True),
        # The event has no schedule id: a rule about schedules does not take it.
        (RuleFilter(schedule_ids=["s-1"]), False),
    ],
)
def test_matching(rule: RuleFilter, expected: bool) -> None:
    assert matches(rule, FAILED_X) is expected


def test_notices_say_what_rules_filter_on() -> None:
    token = TokenRefreshFailed(user_id="bob", reauth_required=True, reason="invalid_grant")
    assert notice_of(token) == Notice("token.refresh_failed", "REAUTH_REQUIRED", user_id="bob")
    sid = uuid4()
    paused = SchedulePaused(schedule_id=sid, reason="3 failures", consecutive_failures=3)
    assert notice_of(paused) == Notice("schedule.paused", "PAUSED", schedule_id=str(sid))
    e = _failed()
    assert notice_of(e) == Notice(
        "execution.completed", "FAILED", user_id="bob", instance_id="inst-1"
    )


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("REAUTH_REQUIRED", "amcctl tokens register bob"),
        ("UNKNOWN_USER", "console's connect flow"),
        ("RESULTS_EXPIRED", "run the workflow again"),
        ("AMC_VALIDATION", "fix the workflow's SQL"),
        ("AMC_REJECTED", "does not retry a rejection"),
        ("RESULTS_NOT_DOWNLOADABLE", "fetch them where the message says they went"),
        ("UNKNOWN_INSTANCE", "amcctl instances add inst-1"),
        ("SUBMISSION_UNKNOWN", "execution list of instance inst-1"),
        ("INTERNAL", "poller's log"),
    ],
)
def test_a_failed_run_says_what_happened_and_what_to_do(code: str, advice: str) -> None:
    event = _failed(code)
    message = render(event)
    assert message.title == f"AMC run FAILED on inst-1: {code}"
    assert message.severity is Severity.FAILURE
    assert str(event.execution_id) in message.body
    assert f"collection week {event.origin.id}" in message.body
    assert f"{code}: AMC says no" in message.body
    assert advice in message.body


def test_a_dry_run_that_passed_says_there_is_no_result() -> None:
    event = ExecutionCompleted(
        execution_id=uuid4(),
        origin=Origin(kind=OriginKind.EXTERNAL, id="req-1"),
        status="SUCCEEDED",
        instance_id="inst-1",
        user_id="bob",
        dry_run=True,
    )
    message = render(event)
    assert message.title == "AMC dry run passed on inst-1"
    assert "nothing ran, there is no result" in message.body


def test_token_paused_and_collection_messages() -> None:
    reauth = render(TokenRefreshFailed(user_id="bob", reauth_required=True, reason="revoked"))
    assert reauth.title == "User bob must re-authorize"
    assert "amcctl tokens register bob" in reauth.body
    assert "revoked" in reauth.body
    sid = uuid4()
    paused = render(SchedulePaused(schedule_id=sid, reason="AMC_FAILED", consecutive_failures=3))
    assert f"amcctl schedules resume {sid}" in paused.body
    cid = uuid4()
    done = render(
        CollectionCompleted(
            collection_id=cid,
            status="COMPLETED_WITH_FAILURES",
            weeks_total=10,
            weeks_succeeded=8,
            weeks_failed=2,
        )
    )
    assert "8 of 10 week(s) succeeded, 2 failed" in done.body
    assert f"amcctl collections retry {cid}" in done.body


def test_a_dead_letter_names_topic_reason_and_place() -> None:
    letter = DeadLetter(
        source_topic="p.schedule.due",
        partition=2,
        offset=41,
        consumer="amc-poller",
        reason="bad field",
        error_type="InvalidEventError",
        failed_at=datetime.now(UTC),
        key="k1",
        headers={},
        payload="{}",
    )
    message = render(letter, dlq_topic="p.schedule.due.dlq")
    assert message.title == "Message refused on p.schedule.due"
    for part in ("p.schedule.due.dlq", "bad field", "InvalidEventError", "offset 41", "k1"):
        assert part in message.body


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = [retry_delay(n, base_s=10, max_s=100) for n in range(1, 7)]
    assert delays == [10, 20, 40, 80, 100, 100]
    assert retry_delay(10_000, base_s=10, max_s=100) == 100
    assert not gives_up(2, 3)
    assert gives_up(3, 3)


@pytest.mark.parametrize(
    ("url", "shown", "channel"),
    [
        ("slack://T1/B2/XoXoSecret", "slack://…/…", "slack"),
        ("discord://123456/WebhookT0ken", "discord://…/…", "discord"),
        ("json://localhost:8000/hook", "json://localhost/…", "json"),
        ("json://10.0.0.7/hook", "json://10.0.0.7/…", "json"),
        (
            "mailtos://me:hunter22@smtp.example.com?to=a@b.c",
            "mailtos://smtp.example.com/…",
            "mailtos",
        ),
        ("jsons://hooks.example.com/abc/def?token=zz", "jsons://hooks.example.com/…", "jsons"),
        ("garbage", "unknown://…/…", "unknown"),
    ],
)
def test_urls_are_shown_by_scheme_and_host_only(url: str, shown: str, channel: str) -> None:
    assert redact(url) == shown
    assert channel_of(url) == channel


def test_scrub_removes_every_secret_part_of_the_url() -> None:
    url = "jsons://ops:hunter22@hooks.example.com/hook/T0kenValue?apikey=K3yK3y"
    text = f"failed to post to {url}: user ops password hunter22 path T0kenValue key K3yK3y"
    clean = scrub(text, url)
    for secret in ("hunter22", "T0kenValue", "K3yK3y"):
        assert secret not in clean
    assert "jsons://hooks.example.com/…" in clean
