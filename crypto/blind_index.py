"""Keyed indexes ("blind indexes"): look a value up without storing it (issue 20).

A keyed index of a value is ``HMAC-SHA256(index key, message)`` (RFC 2104, FIPS 180-4) where
the message binds a *purpose* label to the value::

    message = b"hmg-bi1" || 0x00 || purpose (ASCII) || 0x00 || value (UTF-8 when text)

The purpose is a short lower-case label (``[a-z][a-z0-9.-]*``, no NUL), so the encoding is
unambiguous and the same key serves several purposes without one purpose's digests ever
matching another's: ``"ins"`` (patients by INS), and, for the work that follows,
``"login-name"`` (login throttles keyed by what was typed), ``"network"`` (the client network).
Call :meth:`IndexKeyring.digest` with the purpose and the *normalised* value (a caller that
normalises differently from the writer finds nothing).

Without the index key a digest tells nothing about the value (HMAC is a PRF); with it, a
value from a small space (an INS has about 10^13 valid values) can be confirmed by trying
it, which is why the key lives in the key file with the master keys, outside the database.

Versions (rotation): an :class:`IndexKeyring` holds keys by version (>= 1); new rows are
indexed with the version the database records as active, and while older versions are still
in use a lookup tries every held version (:meth:`IndexKeyring.digests`, newest first) until a
re-index in batches has moved every row to the new one.

Key-check values: :meth:`IndexKeyring.key_check` is an HMAC of a fixed message naming the
version, under a prefix no digest message has (``hmg-bi-kc1``); the database keeps one per
version so a node with another index key refuses before writing.

Pure: no I/O; randomness is a parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from crypto.envelope import KEY_BYTES, Random
from crypto.versions import checked_keys

__all__ = ["DIGEST_BYTES", "BlindDigest", "IndexKeyring", "blind_digest", "check_purpose"]

DIGEST_BYTES = 32
"""Length of a digest (SHA-256)."""

_DIGEST_MAGIC = b"hmg-bi1\x00"
_CHECK_MAGIC = b"hmg-bi-kc1\x00"
_PURPOSE = re.compile(r"[a-z][a-z0-9.-]{0,63}")


def check_purpose(purpose: str) -> bytes:
    """The purpose label as bytes; ``ValueError`` for anything but ``[a-z][a-z0-9.-]*`` (<= 64)."""
    if not isinstance(purpose, str) or _PURPOSE.fullmatch(purpose) is None:
        raise ValueError("a keyed-index purpose is a lower-case label such as 'ins' or 'login-name'")
    return purpose.encode("ascii")


def blind_digest(key: bytes, purpose: str, value: str | bytes) -> bytes:
    """``HMAC-SHA256(key, "hmg-bi1" 0x00 purpose 0x00 value)``: the keyed index of ``value``."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"an index key must be {KEY_BYTES} bytes, got {len(key)}")
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return hmac.new(key, _DIGEST_MAGIC + check_purpose(purpose) + b"\x00" + data, hashlib.sha256).digest()


@dataclass(frozen=True)
class BlindDigest:
    """A digest and the index key version that made it."""

    version: int
    digest: bytes


class IndexKeyring:
    """An immutable set of 256-bit index keys by version (>= 1); the highest is the newest."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        self._keys = checked_keys(keys, ring="an index keyring", what="index key", prefix="index-v")

    @classmethod
    def generate(cls, version: int = 1, rand: Random = os.urandom) -> IndexKeyring:
        return cls({version: rand(KEY_BYTES)})

    @property
    def current_version(self) -> int:
        return max(self._keys)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(self._keys)

    def has(self, version: int) -> bool:
        return version in self._keys

    def key_bytes(self, version: int) -> bytes:
        """The raw key (for the key file writer only)."""
        return self._keys[version]

    def __repr__(self) -> str:  # never show key bytes
        return f"IndexKeyring(versions={self.versions!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexKeyring):
            return NotImplemented
        return self.versions == other.versions and all(
            hmac.compare_digest(self._keys[v], other._keys[v]) for v in self._keys)

    def __hash__(self) -> int:
        return hash(self.versions)

    def digest(self, purpose: str, value: str | bytes, version: int | None = None) -> bytes:
        """The keyed index of ``value`` for ``purpose`` under ``version`` (default: the newest)."""
        v = self.current_version if version is None else version
        key = self._keys.get(v)
        if key is None:
            raise ValueError(f"index key version {v} is not in the keyring")
        return blind_digest(key, purpose, value)

    def digests(self, purpose: str, value: str | bytes, versions: tuple[int, ...] | None = None
                ) -> tuple[BlindDigest, ...]:
        """The keyed index under every held version (or those of ``versions`` held), newest first:
        what a lookup matches while a rotation is re-indexing."""
        wanted = self.versions if versions is None else tuple(v for v in versions if v in self._keys)
        return tuple(BlindDigest(v, blind_digest(self._keys[v], purpose, value))
                     for v in sorted(wanted, reverse=True))

    def key_check(self, version: int) -> bytes:
        """The check value of ``version``: HMAC of a fixed message naming the version."""
        key = self._keys.get(version)
        if key is None:
            raise ValueError(f"index key version {version} is not in the keyring")
        return hmac.new(key, _CHECK_MAGIC + version.to_bytes(4, "big"), hashlib.sha256).digest()

    def verify_key_check(self, version: int, check: bytes) -> bool:
        """True when this ring holds ``version`` and it is the key ``check`` was made with."""
        if version not in self._keys:
            return False
        return hmac.compare_digest(self.key_check(version), bytes(check))

    def with_new_version(self, rand: Random = os.urandom) -> IndexKeyring:
        keys = dict(self._keys)
        keys[self.current_version + 1] = rand(KEY_BYTES)
        return IndexKeyring(keys)

    def up_to(self, version: int) -> IndexKeyring:
        kept = {v: k for v, k in self._keys.items() if v <= version}
        return IndexKeyring(kept) if kept else self

    def without_version(self, version: int) -> IndexKeyring:
        if version not in self._keys:
            raise ValueError(f"index key version {version} is not in the keyring")
        if version == self.current_version:
            raise ValueError(f"index key version {version} is the current version")
        return IndexKeyring({v: k for v, k in self._keys.items() if v != version})
