from __future__ import annotations

import re

import pytest

from shared.crypto import FINGERPRINT_PATTERN, DecryptionError, KeyRing, token_fingerprint


def test_new_key_encrypts_and_old_keys_still_decrypt() -> None:
    old, new = KeyRing.generate_key(), KeyRing.generate_key()
    before = KeyRing([old]).encrypt("refresh-secret")
    ring = KeyRing([new, old])
    assert ring.decrypt(before) == "refresh-secret"
    assert not ring.is_current(before)
    rotated = ring.rotate(before)
    assert ring.is_current(rotated)
    assert KeyRing([new]).decrypt(rotated) == "refresh-secret"


def test_removed_key_gives_a_clear_error_without_the_value() -> None:
    secret = KeyRing([KeyRing.generate_key()]).encrypt("refresh-secret")
    with pytest.raises(DecryptionError, match="no key in the ring") as info:
        KeyRing([KeyRing.generate_key()]).decrypt(secret)
    assert "refresh-secret" not in str(info.value)


def test_invalid_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(ValueError, match="amcctl keys generate"):
        KeyRing(["not-a-key"])
    with pytest.raises(ValueError, match="at least one"):
        KeyRing.from_csv(" , ")


def test_a_token_fingerprint_names_a_token_without_revealing_it() -> None:
    token = "Atza|" + "x" * 40
    fp = token_fingerprint(token)
    assert re.fullmatch(FINGERPRINT_PATTERN, fp)
    assert fp == token_fingerprint(token)
    assert fp != token_fingerprint(token + "y")
    assert fp not in token
    assert token[5:17] not in fp
