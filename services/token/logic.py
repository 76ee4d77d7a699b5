"""Pure rules of the token service: when to refresh, how failures are classified and retried."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.clients.errors import ApiError, InvalidGrantError, RateLimitedError


class TokenStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REAUTH_REQUIRED = "REAUTH_REQUIRED"


UNDECRYPTABLE_REASON = (
    "the stored token cannot be decrypted (its encryption key was removed from "
    "TOKEN_ENCRYPTION_KEYS, or the data is corrupted); the user must authorize again"
)

# Path segments under /tokens that are routes, so they can never be user ids.
RESERVED_USER_IDS = frozenset({"summary", "rotate-keys"})
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@|+=-]{0,255}$")


def no_token_reason(user_id: str) -> str:
    return f"no token is registered for user {user_id!r}; the user must authorize first"


def reauth_reason(detail: str) -> str:
    return f"LWA refused the refresh token, the user must authorize again: {detail}"


def user_id_problem(user_id: str) -> str | None:
    """Why a user id cannot be registered, or None when it can."""
    if user_id in RESERVED_USER_IDS:
        return f"{user_id!r} is reserved (it names an API route)"
    if not USER_ID_PATTERN.match(user_id):
        return (
            "must be 1-256 characters: letters, digits and . _ : @ | + = -, "
            "starting with a letter or digit"
        )
    return None


def key_fingerprint(key: str) -> str:
    """Identifies a Fernet key without revealing it (a truncated SHA-256 of the key)."""
    return hashlib.sha256(key.strip().encode()).hexdigest()[:16]


def has_life(expires_at: datetime | None, now: datetime, min_life: timedelta) -> bool:
    return expires_at is not None and expires_at - now > min_life


def is_due(expires_at: datetime | None, now: datetime, buffer: timedelta) -> bool:
    """The proactive cycle's rule (the SQL claim mirrors it)."""
    return not has_life(expires_at, now, buffer)


class Decision(StrEnum):
    UNKNOWN_USER = "unknown_user"
    REAUTH_REQUIRED = "reauth_required"
    REPUBLISH = "republish"
    REFRESH = "refresh"


@dataclass(frozen=True)
class StoredToken:
    """What a refresh request is decided on (no secrets)."""

    status: TokenStatus
    has_access_token: bool
    expires_at: datetime | None
    last_refreshed_at: datetime | None
    republished_at: datetime | None


def decide_request(
    token: StoredToken | None,
    requested_at: datetime,
    now: datetime,
    min_life: timedelta,
    refused: bool | None = None,
) -> Decision:
    """What to do with a token.refresh_requested.

    `refused` answers "is the token the request names as refused by AMC our current one?"
    (None: the request names none). Our current token refused is refreshed however fresh it
    looks: AMC revokes and rotates tokens before their expiry. A request naming an older
    token is answered with the current one, which is newer than what was refused; that is
    also what makes a burst of 401s for one user cost one LWA call.

    A request naming no token gets a stored token with enough life left rather than a
    refresh, as long as the requester cannot have seen it fail: either it is newer than the
    request (several requests queued for one user are answered by one refresh), or it was
    not re-published since it was issued (a requester that merely lost its cache). A request
    made after a re-publish means the token was tried and rejected: refresh for real.
    """
    if token is None:
        return Decision.UNKNOWN_USER
    if token.status is TokenStatus.REAUTH_REQUIRED:
        return Decision.REAUTH_REQUIRED
    if not token.has_access_token or not has_life(token.expires_at, now, min_life):
        return Decision.REFRESH
    if refused is not None:
        return Decision.REFRESH if refused else Decision.REPUBLISH
    if token.last_refreshed_at is not None and token.last_refreshed_at >= requested_at:
        return Decision.REPUBLISH
    if token.republished_at is None or token.republished_at >= requested_at:
        return Decision.REPUBLISH
    return Decision.REFRESH


class FailureKind(StrEnum):
    REAUTH = "reauth"
    RETRY = "retry"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    retry_after_s: float = 0.0


def classify(exc: BaseException) -> Failure:
    """invalid_grant / unauthorized_client need a person; everything else may pass with time.

    Other 4xx answers (say invalid_client: our own credentials are wrong) are not the user's
    fault, so they do not mark the user; they count as failures and end in
    token.refresh_failed{reauth_required: false} after the threshold, like an outage.
    The client's messages are already redacted of every secret it sent.
    """
    if isinstance(exc, InvalidGrantError):
        return Failure(FailureKind.REAUTH, reauth_reason(exc.message))
    if isinstance(exc, RateLimitedError):
        return Failure(FailureKind.RETRY, exc.message, exc.retry_after)
    if isinstance(exc, ApiError):
        return Failure(FailureKind.RETRY, exc.message)
    # Our own bug or an unexpected library error: the type only, its text might hold anything.
    return Failure(FailureKind.RETRY, f"internal error during refresh ({type(exc).__name__})")


def backoff_s(failures: int, base_s: float, max_s: float, retry_after_s: float = 0.0) -> float:
    """Exponential backoff after the given number of failures in a row (>= 1)."""
    delay: float = min(base_s * 2.0 ** max(failures - 1, 0), max_s)
    return max(delay, retry_after_s)


@dataclass(frozen=True)
class RetryOutcome:
    failures: int
    next_attempt_in_s: float
    report: bool  # publish token.refresh_failed{reauth_required: false} now


def after_transient_failure(
    failures_before: int,
    *,
    threshold: int,
    requested: bool,
    base_s: float,
    max_s: float,
    retry_after_s: float = 0.0,
) -> RetryOutcome:
    """Count the failure, schedule the next try, and say whether to report it.

    The threshold crossing is reported once; after that only a pending request gets an
    answer (a requester waits for one), so an outage does not flood the topic every cycle.
    """
    failures = failures_before + 1
    report = failures == threshold or (failures > threshold and requested)
    return RetryOutcome(failures, backoff_s(failures, base_s, max_s, retry_after_s), report)
