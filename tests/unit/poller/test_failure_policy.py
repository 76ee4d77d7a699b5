"""failure_policy.after_failure: what every failed AMC call means for its execution, in one rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from services.poller.exchange import failure_policy
from services.poller.rows import ExecRow
from shared.clients import (
    ApiError,
    ClientRequestError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from shared.contract import ExecutionStatus, Origin, OriginKind, WorkflowRun
from shared.crypto import token_fingerprint

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OLD_FP, NEW_FP = token_fingerprint("Atza|old"), token_fingerprint("Atza|new")
LIMITS = failure_policy.FailureLimits(
    max_transient_attempts=3,
    reconcile_give_up_s=600,
    results_unavailable_grace_s=60,
    download_give_up_s=3600,
    timeout_s=7200,
)


def row(**changes: Any) -> ExecRow:
    base = ExecRow(
        execution_id=uuid4(),
        origin=Origin(kind=OriginKind.EXTERNAL, id="r1"),
        attempt=1,
        user_id="user-1",
        instance_id="amc1",
        run=WorkflowRun(
            user_id="user-1",
            instance_id="amc1",
            advertiser_id="a",
            marketplace_id="m",
            workflow_id="wf",
            time_window_start=datetime(2024, 1, 1, tzinfo=UTC),
            time_window_end=datetime(2024, 1, 8, tzinfo=UTC),
        ),
        status=ExecutionStatus.RUNNING,
        stage="poll",
        waiting_token=False,
        failures=0,
        poll_count=3,
        cancel_requested=False,
        cancel_kind=None,
        amc_execution_id="x1",
        amc_status="RUNNING",
        submit_intent_at=NOW - timedelta(seconds=30),
        submitted_at=NOW - timedelta(seconds=20),
        amc_finished_seen_at=None,
        next_action_at=NOW,
        created_at=NOW - timedelta(minutes=1),
        updated_at=NOW,
        completed_at=None,
        result_uri=None,
        result_rows=None,
        result_bytes=None,
        error_code=None,
        error_message=None,
        error_retryable=None,
    )
    return replace(base, **changes)


def decide(
    call: failure_policy.AmcCall, exc: ApiError, r: ExecRow, fp: str = OLD_FP
) -> failure_policy.AfterFailure:
    return failure_policy.after_failure(call, exc, r, fp, LIMITS, NOW)


UNAUTHORIZED = UnauthorizedError("AMC answered 401: The access token is invalid", status=401)
CALLS: list[failure_policy.AmcCall] = ["create", "list", "get", "cancel", "download_urls"]


class TestWhatCountsAsARefusedToken:
    @pytest.mark.parametrize(
        "message",
        [
            "AMC answered 403: The security token included in the request is expired",
            "AMC answered 403: Invalid access token",
            "AMC answered 403: credentials have been revoked",
        ],
    )
    def test_a_403_blaming_the_token(self, message: str) -> None:
        assert failure_policy.classify(ClientRequestError(message, status=403)) == "unauthorized"

    def test_other_403s_stay_permanent(self) -> None:
        forbidden = ClientRequestError(
            "AMC answered 403: Amazon-Advertising-API-AdvertiserId has no access to this instance",
            status=403,
        )
        assert failure_policy.classify(forbidden) == "rejected"
        # A token word alone, or a refusal word alone, is not enough.
        assert failure_policy.classify(
            ClientRequestError("AMC answered 403: token ok", status=403)
        ) == ("rejected")
        assert failure_policy.classify(
            ClientRequestError("AMC answered 403: invalid", status=403)
        ) == ("rejected")

    def test_a_400_naming_an_invalid_token_is_not_a_refusal(self) -> None:
        # Only 401 and 403 speak about credentials.
        bad = ClientRequestError("AMC answered 400: invalid nextToken", status=400)
        assert failure_policy.classify(bad) == "rejected"


class TestRefusedTokens:
    @pytest.mark.parametrize("call", CALLS)
    def test_the_first_refusal_waits_for_a_newer_token_on_every_call(
        self, call: failure_policy.AmcCall
    ) -> None:
        decided = decide(call, UNAUTHORIZED, row())
        assert decided.refused_fp == OLD_FP
        assert decided.error is None

    def test_a_refusal_of_the_token_already_refused_waits_again(self) -> None:
        # A call that was on its way with the refused token when the refusal came back.
        decided = decide("get", UNAUTHORIZED, row(refused_token_fp=OLD_FP), OLD_FP)
        assert (decided.refused_fp, decided.error) == (OLD_FP, None)

    def test_a_refusal_of_the_newer_token_ends_the_run_naming_both(self) -> None:
        decided = decide("create", UNAUTHORIZED, row(refused_token_fp=OLD_FP), NEW_FP)
        assert decided.refused_fp is None
        assert decided.error is not None
        assert decided.error.code == "AMC_ACCESS_DENIED"
        assert not decided.error.retryable
        assert NEW_FP in decided.error.message
        assert OLD_FP in decided.error.message
        assert "amc1" in decided.error.message
        assert "The access token is invalid" in decided.error.message

    def test_a_refusal_of_a_token_held_since_before_the_refusal_waits_again(self) -> None:
        # A revocation withdraws all of a user's tokens: one the poller already held when the
        # first was refused is no newer, and its refusal says nothing of the user's access.
        refused = row(refused_token_fp=OLD_FP, refused_at=NOW - timedelta(seconds=5))
        held = failure_policy.after_failure(
            "create", UNAUTHORIZED, refused, NEW_FP, LIMITS, NOW, NOW - timedelta(seconds=30)
        )
        assert (held.refused_fp, held.error) == (NEW_FP, None)
        came_after = failure_policy.after_failure(
            "create", UNAUTHORIZED, refused, NEW_FP, LIMITS, NOW, NOW - timedelta(seconds=1)
        )
        assert came_after.error is not None
        assert came_after.error.code == "AMC_ACCESS_DENIED"

    def test_the_waiting_reason_names_the_token_and_the_bound(self) -> None:
        text = failure_policy.waiting_reason(OLD_FP, 900)
        assert OLD_FP in text
        assert "900s" in text
        failed = failure_policy.refused_wait_error(OLD_FP, 900)
        assert (failed.code, failed.retryable) == ("AMC_ACCESS_DENIED", False)
        assert OLD_FP in failed.message


class TestOtherFailures:
    def test_submission(self) -> None:
        throttled = decide("create", RateLimitedError("x", retry_after=7.0), row())
        assert (throttled.status, throttled.after_s) == (ExecutionStatus.QUEUED, 7.0)
        refused = decide("create", ClientRequestError("bad sql", status=400), row())
        assert refused.error is not None
        assert refused.error.code == "AMC_VALIDATION"
        unclear = decide("create", ServerError("x", status=503), row(failures=1))
        assert (unclear.reconcile, unclear.failures, unclear.backoff_on) == (True, 2, 2)

    def test_reconciling(self) -> None:
        soon = decide("list", TransportError("x"), row(failures=1))
        assert soon.reconcile
        assert soon.failures is None  # a failed look is not a failed submission
        late = row(submit_intent_at=NOW - timedelta(seconds=601))
        given_up = decide("list", ServerError("x", status=500), late)
        assert given_up.error is not None
        assert given_up.error.code == "SUBMISSION_UNKNOWN"
        assert "wf" in given_up.error.message
        assert "amc1" in given_up.error.message

    def test_polling(self) -> None:
        assert decide("get", RateLimitedError("x", retry_after=2.0), row()).after_s == 2.0
        again = decide("get", ServerError("x", status=502), row(failures=1))
        assert (again.failures, again.error) == (2, None)
        gone = decide("get", ServerError("x", status=502), row(failures=2))
        assert gone.error is not None
        assert gone.error.code == "AMC_UNAVAILABLE"
        assert gone.error.retryable
        refused = decide("get", ClientRequestError("x", status=404), row())
        assert refused.error is not None
        assert refused.error.code == "AMC_VALIDATION"

    def test_cancelling(self) -> None:
        read_back = decide("cancel", ServerError("x", status=500), row(cancel_kind="user"))
        assert (read_back.fields, read_back.failures, read_back.after_s) == (
            {"stage": "poll"},
            1,
            0.0,
        )
        timeout = decide(
            "cancel", ServerError("x", status=500), row(cancel_kind="timeout", failures=2)
        )
        assert timeout.error is not None
        assert timeout.error.code == "TIMED_OUT"
        assert failure_policy.status_of(timeout.error) is ExecutionStatus.TIMED_OUT
        follow = decide("cancel", ServerError("x", status=500), row(cancel_kind="user", failures=2))
        assert follow.fields == {"stage": "poll", "cancel_kind": None}
        assert follow.failures == 0

    def test_asking_for_results(self) -> None:
        seen = NOW - timedelta(seconds=61)
        expired = decide(
            "download_urls", ClientRequestError("x", status=400), row(amc_finished_seen_at=seen)
        )
        assert expired.error is not None
        assert expired.error.code == "RESULTS_EXPIRED"
        early = decide(
            "download_urls",
            ClientRequestError("x", status=400),
            row(amc_finished_seen_at=NOW - timedelta(seconds=5)),
        )
        assert (early.error, early.failures) == (None, 1)
        past = row(amc_finished_seen_at=NOW - timedelta(seconds=3601))
        given_up = decide("download_urls", ServerError("x", status=500), past)
        assert given_up.error is not None
        assert given_up.error.code == "DOWNLOAD_FAILED"
