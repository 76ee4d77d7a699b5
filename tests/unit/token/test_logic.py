"""The token service's pure rules: request decisions, failure classes, backoff, user ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.token import logic
from services.token.logic import Decision, FailureKind, StoredToken, TokenStatus
from shared.clients.errors import (
    ApiError,
    ClientRequestError,
    InvalidGrantError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIFE = timedelta(minutes=10)


def token(
    *,
    status: TokenStatus = TokenStatus.ACTIVE,
    access: bool = True,
    expires_in: timedelta | None = timedelta(minutes=50),
    refreshed_ago: timedelta | None = timedelta(minutes=10),
    republished_ago: timedelta | None = None,
) -> StoredToken:
    return StoredToken(
        status=status,
        has_access_token=access,
        expires_at=NOW + expires_in if expires_in is not None else None,
        last_refreshed_at=NOW - refreshed_ago if refreshed_ago is not None else None,
        republished_at=NOW - republished_ago if republished_ago is not None else None,
    )


def test_unknown_user_and_reauth_are_answered_without_refresh() -> None:
    assert logic.decide_request(None, NOW, NOW, LIFE) is Decision.UNKNOWN_USER
    reauth = token(status=TokenStatus.REAUTH_REQUIRED)
    assert logic.decide_request(reauth, NOW, NOW, LIFE) is Decision.REAUTH_REQUIRED


@pytest.mark.parametrize(
    "stored",
    [
        token(access=False),
        token(expires_in=None),
        token(expires_in=timedelta(minutes=9)),
        token(expires_in=-timedelta(minutes=1)),
    ],
)
def test_a_token_without_enough_life_is_refreshed(stored: StoredToken) -> None:
    assert logic.decide_request(stored, NOW, NOW, LIFE) is Decision.REFRESH


def test_a_token_newer_than_the_request_is_republished() -> None:
    # Requests queued while a refresh ran are answered with its result: one LWA call.
    stored = token(refreshed_ago=timedelta(seconds=1), republished_ago=timedelta(seconds=1))
    requested_at = NOW - timedelta(seconds=5)
    assert logic.decide_request(stored, requested_at, NOW, LIFE) is Decision.REPUBLISH


def test_an_older_token_is_republished_once_then_refreshed() -> None:
    requested_at = NOW - timedelta(seconds=1)
    never_republished = token(refreshed_ago=timedelta(minutes=5))
    assert logic.decide_request(never_republished, requested_at, NOW, LIFE) is Decision.REPUBLISH
    # Republished after this request was made: the requester has not seen it yet.
    republished_later = token(refreshed_ago=timedelta(minutes=5), republished_ago=timedelta(0))
    assert logic.decide_request(republished_later, requested_at, NOW, LIFE) is Decision.REPUBLISH
    # Asked again after the republish: the token was tried and rejected.
    republished_before = token(
        refreshed_ago=timedelta(minutes=5), republished_ago=timedelta(seconds=30)
    )
    assert logic.decide_request(republished_before, requested_at, NOW, LIFE) is Decision.REFRESH


def test_due_mirrors_the_buffer() -> None:
    assert logic.is_due(None, NOW, LIFE)
    assert logic.is_due(NOW + LIFE, NOW, LIFE)
    assert not logic.is_due(NOW + LIFE + timedelta(seconds=1), NOW, LIFE)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            InvalidGrantError("LWA answered 400: revoked", status=400, code="invalid_grant"),
            "reauth",
        ),
        (
            InvalidGrantError("LWA answered 400: no", status=400, code="unauthorized_client"),
            "reauth",
        ),
        (ServerError("LWA answered 503", status=503), "retry"),
        (RateLimitedError("LWA answered 429", retry_after=7.0), "retry"),
        (TransportError("LWA: timed out (ReadTimeout)"), "retry"),
        (UnauthorizedError("LWA answered 401: invalid_client", status=401), "retry"),
        (ClientRequestError("LWA answered 400: invalid_request", status=400), "retry"),
        (ApiError("LWA answered 200 with an unexpected body", status=200), "retry"),
        (KeyError("Atza|secret-looking-thing"), "retry"),
    ],
)
def test_failures_are_classified(error: BaseException, kind: str) -> None:
    failure = logic.classify(error)
    assert failure.kind is FailureKind(kind)
    assert "Atza|" not in failure.message  # unknown errors keep their text out


def test_reauth_reason_and_retry_after_are_kept() -> None:
    failure = logic.classify(InvalidGrantError("LWA answered 400: revoked", status=400))
    assert "authorize again" in failure.message
    assert "revoked" in failure.message
    assert logic.classify(RateLimitedError("slow down", retry_after=7.0)).retry_after_s == 7.0


def test_backoff_grows_to_a_cap_and_honours_retry_after() -> None:
    delays = [logic.backoff_s(n, 1.0, 10.0) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert logic.backoff_s(1, 1.0, 10.0, retry_after_s=30.0) == 30.0


def test_failures_are_reported_at_the_threshold_then_only_to_requesters() -> None:
    def report(before: int, requested: bool) -> bool:
        return logic.after_transient_failure(
            before, threshold=3, requested=requested, base_s=1.0, max_s=60.0
        ).report

    assert [report(n, False) for n in range(5)] == [False, False, True, False, False]
    assert [report(n, True) for n in range(5)] == [False, False, True, True, True]
    outcome = logic.after_transient_failure(1, threshold=3, requested=False, base_s=1.0, max_s=60.0)
    assert (outcome.failures, outcome.next_attempt_in_s) == (2, 2.0)


@pytest.mark.parametrize("user_id", ["user-1", "amzn1.account.ABC", "a@b.c", "u|1:2"])
def test_valid_user_ids(user_id: str) -> None:
    assert logic.user_id_problem(user_id) is None


@pytest.mark.parametrize("user_id", ["", "summary", "rotate-keys", "_x", "a b", "x" * 300, "a/b"])
def test_invalid_user_ids_say_why(user_id: str) -> None:
    problem = logic.user_id_problem(user_id)
    assert problem is not None
    assert problem


def test_key_fingerprint_is_stable_and_not_the_key() -> None:
    key = "q1bW4m8sYH0pXhR0z4c3yq3Y4eT7nqg0b8r3Lx5wZ0E="
    assert logic.key_fingerprint(key) == logic.key_fingerprint(f" {key} ")
    assert key not in logic.key_fingerprint(key)
    assert logic.key_fingerprint(key) != logic.key_fingerprint(key[::-1])


def test_no_token_reason_names_the_user() -> None:
    assert "no token is registered for user 'u-9'" in logic.no_token_reason("u-9")


class TestRequestNamingARefusedToken:
    """token.refresh_requested naming the token AMC refused, by fingerprint (issue 20)."""

    def test_our_current_token_refused_is_refreshed_however_fresh(self) -> None:
        fresh = token(refreshed_ago=timedelta(seconds=1), expires_in=timedelta(minutes=59))
        assert logic.decide_request(fresh, NOW, NOW, LIFE, refused=True) is Decision.REFRESH

    def test_an_older_token_refused_gets_the_current_one(self) -> None:
        # The refresh another run's 401 caused already replaced it: no second LWA call.
        stored = token(refreshed_ago=timedelta(minutes=5), republished_ago=timedelta(minutes=1))
        requested_at = NOW - timedelta(seconds=1)
        decided = logic.decide_request(stored, requested_at, NOW, LIFE, refused=False)
        assert decided is Decision.REPUBLISH

    def test_a_dead_grant_or_an_expiring_token_decide_first(self) -> None:
        reauth = token(status=TokenStatus.REAUTH_REQUIRED)
        assert logic.decide_request(reauth, NOW, NOW, LIFE, refused=True) is (
            Decision.REAUTH_REQUIRED
        )
        expiring = token(expires_in=timedelta(minutes=1))
        assert logic.decide_request(expiring, NOW, NOW, LIFE, refused=False) is Decision.REFRESH
