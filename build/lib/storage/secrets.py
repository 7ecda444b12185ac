"""Backend tokens encrypted at rest with ``cryptography``'s Fernet.

``NEMO_SECRET_KEY`` holds one or more Fernet keys, comma-separated. The first key
encrypts; every key decrypts (:class:`cryptography.fernet.MultiFernet`), so a key
is rotated by putting a new one in front, restarting (the store re-encrypts every
token under the first key when it opens), then dropping the old one.

A stored encrypted token is ``fernet:`` followed by the Fernet token; anything
else is a token stored before encryption was turned on, read as it is and
encrypted at the next open.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .base import StoreError

__all__ = ["PREFIX", "SecretKeyError", "TokenCipher", "generate_key", "parse_keys"]

PREFIX = "fernet:"
"""Marks an encrypted value in the ``users.token`` column."""


class SecretKeyError(StoreError):
    """A key is malformed, missing, or decrypts none of the stored tokens. One line."""


def generate_key() -> str:
    """A fresh Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: str) -> list[str]:
    """Split ``NEMO_SECRET_KEY`` into keys; raise :class:`SecretKeyError` on a bad one."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise SecretKeyError("holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def is_encrypted(stored: str) -> bool:
    """Whether a stored value is one this module encrypted."""
    return stored.startswith(PREFIX)


class TokenCipher:
    """Encrypts tokens with the first key; decrypts with any of them."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        """``keys``: the raw ``NEMO_SECRET_KEY`` value, or the keys themselves."""
        parsed = parse_keys(keys) if isinstance(keys, str) else parse_keys(",".join(keys))
        self._primary = Fernet(parsed[0].encode("ascii"))
        self._all = MultiFernet([Fernet(k.encode("ascii")) for k in parsed])

    def __repr__(self) -> str:
        return "<TokenCipher>"

    def encrypt(self, token: str) -> str:
        """The value to store for ``token``."""
        return PREFIX + self._primary.encrypt(token.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The token behind a stored value (a value stored in the clear passes through)."""
        if not is_encrypted(stored):
            return stored
        try:
            return self._all.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                "NEMO_SECRET_KEY holds none of the keys that encrypted the stored tokens"
            ) from None

    def refreshed(self, stored: str) -> str | None:
        """``stored`` re-encrypted under the first key, or None when it already is."""
        if is_encrypted(stored):
            try:
                self._primary.decrypt(stored[len(PREFIX) :].encode("ascii"))
                return None
            except InvalidToken:
                pass
        return self.encrypt(self.decrypt(stored))


def check_readable(cipher: TokenCipher | None, encrypted_rows: int) -> None:
    """Refuse a store opened without a key on a database that holds encrypted tokens."""
    if cipher is None and encrypted_rows:
        raise SecretKeyError(
            "the database holds encrypted tokens but NEMO_SECRET_KEY is not set "
            "(set it to the key that encrypted them)"
        )
