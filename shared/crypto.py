"""Fernet key rings: the first key encrypts, every key decrypts (rotation without downtime)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    """Ciphertext that no key in the ring can open (key removed, or data corrupted)."""


class KeyRing:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one Fernet key")
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys]
        except (ValueError, TypeError):
            raise ValueError(
                "invalid Fernet key: each key must be 32 url-safe base64-encoded bytes "
                "(generate one with `amcctl keys generate`)"
            ) from None
        self._ring = MultiFernet(self._fernets)

    @classmethod
    def from_csv(cls, keys: str) -> KeyRing:
        return cls([k for k in keys.split(",") if k.strip()])

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._ring.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._ring.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise DecryptionError("no key in the ring can decrypt this value") from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first (newest) key."""
        try:
            return self._ring.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise DecryptionError("no key in the ring can decrypt this value") from None

    def is_current(self, ciphertext: str) -> bool:
        """Whether the value is already encrypted under the first key."""
        try:
            self._fernets[0].decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True


FINGERPRINT_PATTERN = r"^[0-9a-f]{12}$"


def token_fingerprint(token: str) -> str:
    """Names an access token across services without revealing it: the first 48 bits of its
    SHA-256. A bearer token is high-entropy, so the prefix cannot be turned back into it, and
    two tokens of one user colliding in 48 bits is not a case worth a branch."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
