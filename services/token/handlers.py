"""token.refresh_requested: answer from what is stored, or ask the refreshers (no LWA here).

The handler runs in the consumer's transaction and holds the user's row lock only for a few
statements; the LWA call happens in the on-demand refresher, woken by NOTIFY on commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.token import logic, store
from services.token.logic import Decision
from services.token.refresher import refresh_channel
from services.token.settings import TokenSettings
from services.token.vault import Vault
from shared.consumer import Tx
from shared.contract import TokenRefreshed, TokenRefreshFailed, TokenRefreshRequested
from shared.crypto import DecryptionError, token_fingerprint
from shared.runtime import ServiceRuntime
from shared.telemetry import trace_carrier


def register_handlers(runtime: ServiceRuntime, settings: TokenSettings, vault: Vault) -> None:
    channel = refresh_channel(runtime.schema)
    min_life = timedelta(seconds=settings.refresh_buffer_s)

    @runtime.consumer.on(TokenRefreshRequested)
    async def on_refresh_requested(tx: Tx, event: TokenRefreshRequested) -> None:
        user_id = event.user_id
        locked = await store.lock_token(tx.conn, user_id)
        decision = logic.decide_request(
            locked.state if locked else None,
            event.occurred_at,
            datetime.now(UTC),
            min_life,
            refused=_names_current(locked, event.refused_token_fp),
        )
        if decision is Decision.UNKNOWN_USER:
            await tx.emit(
                TokenRefreshFailed(
                    user_id=user_id, reauth_required=True, reason=logic.no_token_reason(user_id)
                )
            )
            return
        if decision is Decision.REAUTH_REQUIRED:
            last_error = await store.get_last_error(tx.conn, user_id)
            reason = "the user must authorize again" + (f": {last_error}" if last_error else "")
            await tx.emit(
                TokenRefreshFailed(user_id=user_id, reauth_required=True, reason=reason[:2000])
            )
            return
        if decision is Decision.REPUBLISH:
            assert locked is not None
            assert locked.access_token_enc is not None
            assert locked.state.expires_at is not None
            try:
                access = vault.storage.decrypt(locked.access_token_enc)
            except DecryptionError:
                # The refresh token may still open (or fail with a clear reason there).
                await store.request_refresh(tx.conn, user_id, channel, trace_carrier())
                return
            await store.mark_republished(tx.conn, user_id)
            await tx.emit(
                TokenRefreshed(
                    user_id=user_id,
                    access_token_encrypted=vault.events.encrypt(access),
                    expires_at=locked.state.expires_at,
                    issued_at=locked.state.last_refreshed_at,
                )
            )
            return
        await store.request_refresh(tx.conn, user_id, channel, trace_carrier())

    def _names_current(locked: store.LockedToken | None, refused_fp: str | None) -> bool | None:
        """Whether the token AMC refused is the one we hold (None: the request names none).
        A current token we cannot open counts as refused: only a refresh replaces it."""
        if refused_fp is None or locked is None or locked.access_token_enc is None:
            return None
        try:
            current = vault.storage.decrypt(locked.access_token_enc)
        except DecryptionError:
            return True
        return token_fingerprint(current) == refused_fp
