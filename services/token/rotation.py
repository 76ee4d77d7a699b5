"""Key rotation: re-encrypt stored tokens under the newest storage key, in short batches.

Every replica must already have the new key in its ring (first) with the old keys after it;
then every value stays readable throughout: old rows by the old key, rotated rows by the new.
Batches lock only their own rows (SKIP LOCKED), so refreshes go on meanwhile; the cursor makes
the work resumable, and a new pass from the start simply finds less to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.token import logic, store
from services.token.store import Sealed
from services.token.vault import Vault
from shared.contract import TokenRefreshFailed
from shared.crypto import DecryptionError
from shared.outbox import Outbox


@dataclass(frozen=True)
class RotationProgress:
    rotated: int
    undecryptable: int
    next_after: str | None  # pass it back to continue; None: this pass reached the end
    remaining: int  # rows still under another key (undecryptable ones included)


async def rotate_keys(
    pool: asyncpg.Pool[Any],
    vault: Vault,
    outbox: Outbox,
    *,
    after: str | None,
    batch_size: int,
    max_seconds: float,
) -> RotationProgress:
    """Rotate batches from `after` on until the end or until `max_seconds` have passed."""
    deadline = time.monotonic() + max_seconds
    rotated = undecryptable = 0
    cursor = after
    finished = False
    while time.monotonic() < deadline:
        async with pool.acquire() as conn, conn.transaction():
            batch = await store.rotation_batch(
                conn, key_fp=vault.current_fp, after=cursor, limit=batch_size
            )
            if not batch:
                finished = True
                break
            good: list[Sealed] = []
            bad: list[str] = []
            for row in batch:
                try:
                    good.append(
                        Sealed(
                            row.user_id,
                            vault.storage.rotate(row.refresh_token_enc),
                            vault.storage.rotate(row.access_token_enc)
                            if row.access_token_enc is not None
                            else None,
                        )
                    )
                except DecryptionError:
                    bad.append(row.user_id)
            await store.write_rotated(conn, good, vault.current_fp)
            if bad:
                newly = await store.mark_undecryptable(conn, bad, logic.UNDECRYPTABLE_REASON)
                await outbox.enqueue(
                    conn,
                    *(
                        TokenRefreshFailed(
                            user_id=u, reauth_required=True, reason=logic.UNDECRYPTABLE_REASON
                        )
                        for u in newly
                    ),
                )
            rotated += len(good)
            undecryptable += len(bad)
            cursor = batch[-1].user_id
            if len(batch) < batch_size:
                finished = True
                break
    async with pool.acquire() as conn:
        remaining = await store.count_under_old_key(conn, vault.current_fp)
    return RotationProgress(rotated, undecryptable, None if finished else cursor, remaining)
