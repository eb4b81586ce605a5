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
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "BLOB_VERSION",
    "KEY_BYTES",
    "NONCE_BYTES",
    "ONE_SHOT_MAX",
    "STEP_BYTES",
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
# Above ONE_SHOT_MAX, GCM runs in steps of STEP_BYTES (same bytes out): one AESGCM call on a
# 20 MiB message held the GIL for 17-30 ms at a stretch, stalling the event loop of the
# process receiving it; between steps other threads get their turn (issue 8).
STEP_BYTES = 1024 * 1024
ONE_SHOT_MAX = 4 * STEP_BYTES  # up to here one call (a few ms); stepping costs some CPU
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


def seal(key: bytes, plaintext: bytes | Sequence[bytes], associated: bytes, *, rand: Random = os.urandom) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``associated``.

    Returns ``version || nonce || ciphertext || tag``. A fresh random nonce is drawn for
    every call (NIST SP 800-38D §8.2.2, RBG-based construction). ``plaintext`` may be given
    in parts (a header put in front of a received message): the blob is the seal of their
    concatenation, which is never made. Above :data:`ONE_SHOT_MAX` the blob is built once,
    from the GCM steps (issue 22: each extra copy of a 20 MiB message cost ~18 ms of CPU in
    page faults).
    """
    _check_key(key)
    nonce = rand(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"random source returned {len(nonce)} bytes, expected {NONCE_BYTES}")
    header = bytes([BLOB_VERSION]) + nonce
    parts = (plaintext,) if isinstance(plaintext, bytes | bytearray | memoryview) else tuple(plaintext)
    if sum(len(p) for p in parts) <= ONE_SHOT_MAX:
        whole = parts[0] if len(parts) == 1 else b"".join(parts)
        return header + AESGCM(key).encrypt(nonce, whole, _gcm_associated(BLOB_VERSION, associated))
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(_gcm_associated(BLOB_VERSION, associated))
    out = [header]
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), STEP_BYTES):
            out.append(encryptor.update(view[start:start + STEP_BYTES]))
    out.append(encryptor.finalize())
    out.append(encryptor.tag)
    return b"".join(out)


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
        if len(blob) - _HEADER_BYTES - TAG_BYTES <= ONE_SHOT_MAX:
            return AESGCM(key).decrypt(nonce, blob[_HEADER_BYTES:], _gcm_associated(version, associated))
        return _open_in_steps(key, nonce, blob, _gcm_associated(version, associated))
    except InvalidTag:
        # `from None`: the cryptography exception carries nothing useful, and no key bytes.
        raise DecryptionError(
            "sealed blob failed authentication (wrong key, altered data or wrong row)"
        ) from None


def _open_in_steps(key: bytes, nonce: bytes, blob: bytes, associated: bytes) -> bytes:
    """GCM decryption in :data:`STEP_BYTES` steps; the plaintext is returned only after the
    tag verified (``finalize`` raises InvalidTag otherwise)."""
    tag = blob[-TAG_BYTES:]
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated)
    view = memoryview(blob)[_HEADER_BYTES:len(blob) - TAG_BYTES]
    out = bytearray()
    for start in range(0, len(view), STEP_BYTES):
        out += decryptor.update(view[start:start + STEP_BYTES])
    out += decryptor.finalize()
    return bytes(out)


def sealed_size(plaintext_len: int) -> int:
    """Size in bytes of the blob :func:`seal` produces for ``plaintext_len`` bytes."""
    if plaintext_len < 0:
        raise ValueError("plaintext length cannot be negative")
    return _HEADER_BYTES + plaintext_len + TAG_BYTES
