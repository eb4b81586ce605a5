"""Envelope encryption: AES-256-GCM blobs bound to their row by associated data.

Blob format (version 1)::

    +---------+--------------------+-----------------------------+
    | version | nonce (12 bytes)   | ciphertext || tag (16 bytes)|
    +---------+--------------------+-----------------------------+

The version byte is authenticated too: it is prepended to the caller's associated data
before it reaches GCM, so a blob cannot be replayed under another format version.

Pure: no file or socket I/O; randomness is a parameter (``os.urandom`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "BLOB_VERSION",
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "DecryptionError",
    "Random",
    "aad",
    "new_data_key",
    "open_sealed",
    "seal",
    "sealed_size",
]

Random = Callable[[int], bytes]

# FIPS 197 / NIST SP 800-38D: AES-256 takes a 256-bit key.
KEY_BYTES = 32
# NIST SP 800-38D §5.2.1.1 and §8.2: 96-bit IVs are the recommended length. With random
# IVs (§8.2.2) one key must not seal more than 2**32 messages (§8.3); per-mailbox data
# keys stay far below that bound.
NONCE_BYTES = 12
# NIST SP 800-38D §5.2.1.2: full-length 128-bit authentication tag (AESGCM's default).
TAG_BYTES = 16
BLOB_VERSION = 1

_HEADER_BYTES = 1 + NONCE_BYTES
_AAD_MAGIC = b"hmg1"
_AAD_FIELD_MAX = 0xFFFF  # 2-byte big-endian length prefix


class DecryptionError(Exception):
    """A sealed blob could not be opened.

    Raised for a wrong key, tampered bytes, mismatched associated data, or a truncated or
    unknown-version blob. The message never contains key material or plaintext.
    """


def new_data_key(rand: Random = os.urandom) -> bytes:
    """Return a fresh random 256-bit key."""
    key = rand(KEY_BYTES)
    if len(key) != KEY_BYTES:
        raise ValueError(f"random source returned {len(key)} bytes, expected {KEY_BYTES}")
    return bytes(key)


def aad(purpose: str, mailbox: str, item: str) -> bytes:
    """Canonical associated data binding a ciphertext to its purpose, mailbox and item.

    Encoding: ``b"hmg1"`` then, for each field, a 2-byte big-endian length and the UTF-8
    bytes. Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") differ.
    """
    out = bytearray(_AAD_MAGIC)
    for name, value in (("purpose", purpose), ("mailbox", mailbox), ("item", item)):
        raw = value.encode("utf-8")
        if len(raw) > _AAD_FIELD_MAX:
            raise ValueError(f"associated data field {name!r} is longer than {_AAD_FIELD_MAX} bytes")
        out += len(raw).to_bytes(2, "big")
        out += raw
    return bytes(out)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes, got {len(key)}")


def _gcm_associated(version: int, associated: bytes) -> bytes:
    return bytes([version]) + associated


def seal(key: bytes, plaintext: bytes, associated: bytes, *, rand: Random = os.urandom) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``associated``.

    Returns ``version || nonce || ciphertext || tag``. A fresh random nonce is drawn for
    every call (NIST SP 800-38D §8.2.2, RBG-based construction).
    """
    _check_key(key)
    nonce = rand(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"random source returned {len(nonce)} bytes, expected {NONCE_BYTES}")
    body = AESGCM(key).encrypt(nonce, plaintext, _gcm_associated(BLOB_VERSION, associated))
    return bytes([BLOB_VERSION]) + nonce + body


def open_sealed(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Verify and decrypt a blob made by :func:`seal`; raise :class:`DecryptionError`."""
    _check_key(key)
    if len(blob) < _HEADER_BYTES + TAG_BYTES:
        raise DecryptionError("sealed blob is truncated")
    version = blob[0]
    if version != BLOB_VERSION:
        raise DecryptionError(f"unknown sealed blob version {version}")
    nonce = blob[1:_HEADER_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[_HEADER_BYTES:], _gcm_associated(version, associated))
    except InvalidTag:
        # `from None`: the cryptography exception carries nothing useful, and no key bytes.
        raise DecryptionError(
            "sealed blob failed authentication (wrong key, altered data or wrong row)"
        ) from None


def sealed_size(plaintext_len: int) -> int:
    """Size in bytes of the blob :func:`seal` produces for ``plaintext_len`` bytes."""
    if plaintext_len < 0:
        raise ValueError("plaintext length cannot be negative")
    return _HEADER_BYTES + plaintext_len + TAG_BYTES
