"""Token settings from the environment, and the key rings built from them."""

from __future__ import annotations

import pytest

from services.token.settings import TokenSettings
from services.token.vault import MissingKeysError, Vault
from shared.crypto import KeyRing


def test_prefixed_and_shared_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    storage_new, storage_old, event = (KeyRing.generate_key() for _ in range(3))
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", f"{storage_new}, {storage_old}")
    monkeypatch.setenv("EVENT_ENCRYPTION_KEYS", event)
    monkeypatch.setenv("LWA_CLIENT_ID", "amzn1.application-oa2-client.x")
    monkeypatch.setenv("TOKEN_LWA_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("TOKEN_REFRESH_BUFFER_S", "300")
    settings = TokenSettings()
    assert settings.lwa_client_id == "amzn1.application-oa2-client.x"
    assert settings.refresh_interval_s == 600.0
    assert settings.refresh_buffer_s == 300.0
    assert settings.lwa_base_url == "https://api.amazon.com"
    assert "s3cret" not in repr(settings)
    vault = Vault.from_settings(settings)
    old_value = KeyRing([storage_old]).encrypt("x")
    assert vault.storage.decrypt(old_value) == "x"
    assert KeyRing([storage_new]).decrypt(vault.storage.encrypt("y")) == "y"
    assert KeyRing([event]).decrypt(vault.events.encrypt("z")) == "z"


def test_missing_keys_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("EVENT_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(MissingKeysError, match="TOKEN_ENCRYPTION_KEYS"):
        Vault.from_settings(TokenSettings())
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", KeyRing.generate_key())
    with pytest.raises(MissingKeysError, match="EVENT_ENCRYPTION_KEYS"):
        Vault.from_settings(TokenSettings())
