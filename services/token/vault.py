"""The service's two key rings: storage (tokens at rest) and events (token.refreshed)."""

from __future__ import annotations

from dataclasses import dataclass

from services.token.logic import key_fingerprint
from services.token.settings import TokenSettings
from shared.crypto import KeyRing


class MissingKeysError(ValueError):
    pass


def _keys(csv: str) -> list[str]:
    return [k.strip() for k in csv.split(",") if k.strip()]


@dataclass(frozen=True)
class Vault:
    storage: KeyRing
    events: KeyRing
    current_fp: str  # fingerprint of the storage key that encrypts now

    @classmethod
    def from_settings(cls, settings: TokenSettings) -> Vault:
        storage = _keys(settings.encryption_keys.get_secret_value())
        events = _keys(settings.event_encryption_keys.get_secret_value())
        if not storage:
            raise MissingKeysError(
                "TOKEN_ENCRYPTION_KEYS is not set: give one or more Fernet keys, comma-separated "
                "(generate one with `amcctl keys generate`)"
            )
        if not events:
            raise MissingKeysError(
                "EVENT_ENCRYPTION_KEYS is not set: give the Fernet key(s) shared with the poller"
            )
        return cls(KeyRing(storage), KeyRing(events), key_fingerprint(storage[0]))
