"""Credentials at rest: AES-256-GCM under a key ring, so the store holds only ciphertext.

The registry API takes literal credentials (the CRM has them; there is no file to point
at) and keeps them in the store. Each value is sealed on its own:

    v1:<key id>:<base64(nonce || ciphertext || tag)>

- the key id is the first 8 hex digits of SHA-256 over the key, so a sealed value names
  the key it needs without saying anything about it;
- the nonce is 12 random bytes per value (GCM's standard size; never reused under a key);
- the associated data is the integration id and the credential's name, so a value copied
  into another row or under another name does not open.

A key ring is a list of keys: the first seals, every key opens, so a new key is rolled in
first, `healthd rekey` seals everything under it, and the old key is dropped after.
A value that opens under no key of the ring raises `VaultError` naming the key id it
needs, never a value. Fingerprints (`fingerprint`) are an HMAC of the value under a key
derived from the sealing key: equal values show equal fingerprints, and a fingerprint
cannot be checked against guesses without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from healthd.errors import HealthdError
from healthd.secrets import Secret

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
VERSION = "v1"
FINGERPRINT_CHARS = 8


class VaultError(HealthdError):
    """A key is malformed, or a sealed value opens under no key of the ring."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def new_key() -> str:
    """A fresh key, as a key file or variable holds it (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class KeyRing:
    """Seals under the first key, opens under any. See the module for the format."""

    def __init__(self, keys: Sequence[Secret]) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._first: str | None = None
        raw_keys: list[bytes] = []
        for n, secret in enumerate(keys):
            raw = _decode_key(secret, n)
            raw_keys.append(raw)
            self._keys.setdefault(key_id(raw), AESGCM(raw))
        if raw_keys:
            self._first = key_id(raw_keys[0])
            self._mac_key = hmac.digest(raw_keys[0], b"healthd fingerprint", "sha256")

    @property
    def empty(self) -> bool:
        return self._first is None

    @property
    def sealing_key(self) -> str | None:
        """The id of the key new values are sealed under."""
        return self._first

    def seal(self, value: str, *, context: str) -> str:
        if self._first is None:
            raise VaultError("no key to seal credentials with: set registry.keys")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._first].encrypt(nonce, value.encode(), context.encode())
        body = base64.b64encode(nonce + sealed).decode()
        return f"{VERSION}:{self._first}:{body}"

    def open(self, sealed: str, *, context: str) -> Secret:
        version, _, rest = sealed.partition(":")
        kid, _, body = rest.partition(":")
        if version != VERSION or not kid or not body:
            raise VaultError(f"{context}: not a sealed credential")
        aead = self._keys.get(kid)
        if aead is None:
            raise VaultError(
                f"{context} is sealed under key {kid}, which is not in registry.keys"
                + (f" (they are: {', '.join(self._keys)})" if self._keys else " (none is set)")
            )
        try:
            blob = base64.b64decode(body, validate=True)
            plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultError(f"{context} does not open under key {kid}: damaged") from None
        return Secret(plain.decode())

    def needs_rekey(self, sealed: str) -> bool:
        """Whether `sealed` is under another key than the sealing one."""
        return sealed.split(":", 2)[1:2] != [self._first]

    def fingerprint(self, value: str) -> str:
        if self._first is None:
            raise VaultError("no key to fingerprint credentials with: set registry.keys")
        mac = hmac.digest(self._mac_key, value.encode(), "sha256")
        return mac.hex()[:FINGERPRINT_CHARS]


def _decode_key(secret: Secret, n: int) -> bytes:
    try:
        raw = base64.b64decode(secret.reveal().strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise VaultError(
            f"registry.keys[{n}]: must be {KEY_BYTES} random bytes in base64"
            " (`healthd newkey` prints one)"
        )
    return raw
