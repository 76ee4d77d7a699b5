"""SQL against the token schema, by concern: `claims.py` (claiming due and requested tokens,
their leases, the outcomes stored under a claim), `requests.py` (on-demand requests inside the
consumer's transaction), `tokens.py` (registration, reading for the API and the metrics),
`rotation.py` (key rotation batches). Every statement is short: no LWA call ever runs inside
one. Callers use `store.<name>` whatever the module.
"""

from services.token.store.claims import (
    Claimed,
    Grant,
    claim_due,
    claim_requested,
    finish_reauth,
    finish_retry,
    finish_successes,
    renew_claims,
)
from services.token.store.requests import (
    LockedToken,
    get_last_error,
    lock_token,
    mark_republished,
    request_refresh,
)
from services.token.store.rotation import (
    Sealed,
    count_under_old_key,
    mark_undecryptable,
    rotation_batch,
    write_rotated,
)
from services.token.store.tokens import (
    TokenRow,
    count_by_state,
    delete_token,
    get_token,
    list_tokens,
    store_grant,
    summary,
)

__all__ = [
    "Claimed",
    "Grant",
    "LockedToken",
    "Sealed",
    "TokenRow",
    "claim_due",
    "claim_requested",
    "count_by_state",
    "count_under_old_key",
    "delete_token",
    "finish_reauth",
    "finish_retry",
    "finish_successes",
    "get_last_error",
    "get_token",
    "list_tokens",
    "lock_token",
    "mark_republished",
    "mark_undecryptable",
    "renew_claims",
    "request_refresh",
    "rotation_batch",
    "store_grant",
    "summary",
    "write_rotated",
]
