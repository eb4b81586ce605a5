"""Versioned master keys that wrap mailbox data keys, and the key file text format.

Rotation (SPEC §8): add a version with :meth:`MasterKeyring.with_new_version`, then
:meth:`MasterKeyring.rewrap` every stored data key; messages are never re-encrypted. Once
no wrapped key references an old version, that version can be dropped from the file
(:meth:`MasterKeyring.without_version`).

Key-check values (issue 14): :meth:`MasterKeyring.key_check` seals a known constant under one
version, bound to that version number; the database keeps one per version it uses, so a key
file can be checked against the database (:meth:`MasterKeyring.verify_key_check`) before
anything is written with a wrong key.

Index keys (issue 20): the key file also holds versioned *index keys* (lines
``index-v<N> = <base64>``), the keys of the keyed indexes of :mod:`crypto.blind_index`; they
travel with the master keys (:attr:`MasterKeyring.index`) so every node that reads its key
file, and re-reads it on SIGHUP or on an unknown version, gets both.

Pure: the gateway reads and writes the key file; this module only parses and formats text.
"""

from __future__ import annotations

import binascii
import hmac
import os
import re
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass

from crypto.blind_index import IndexKeyring
from crypto.envelope import KEY_BYTES, DecryptionError, Random, new_data_key, open_sealed, seal
from crypto.versions import MAX_VERSION, checked_keys

__all__ = ["KeyfileError", "MasterKeyring", "WrappedKey", "format_keyfile", "parse_keyfile"]

_WRAP_MAGIC = b"hmg-mk1"
_CHECK_MAGIC = b"hmg-kc1"  # a different prefix: a check value never opens as a wrapped data key
_CHECK_PLAINTEXT = b"health mail gateway master key check"


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under master key ``version``."""

    version: int
    blob: bytes


class KeyfileError(ValueError):
    """The key file text is unusable; the message is meant for an operator."""


def _wrap_associated(version: int, associated: bytes) -> bytes:
    # Fixed-width version after a fixed prefix: unambiguous, and a blob wrapped under one
    # version cannot be presented as belonging to another.
    return _WRAP_MAGIC + version.to_bytes(4, "big") + associated


class MasterKeyring:
    """An immutable set of 256-bit master keys indexed by version (>= 1), with the key file's
    index keys (:attr:`index`, None when the file has no index section yet)."""

    __slots__ = ("_index", "_keys")

    def __init__(self, keys: Mapping[int, bytes], index: IndexKeyring | None = None) -> None:
        self._keys = checked_keys(keys, ring="a master keyring", what="master key", prefix="v")
        self._index = index

    @property
    def index(self) -> IndexKeyring | None:
        """The index keys of the same key file (None: the file has no ``index-v<N>`` line)."""
        return self._index

    def with_index(self, index: IndexKeyring | None) -> MasterKeyring:
        """The same master keys with ``index`` as the index keys."""
        return MasterKeyring(self._keys, index)

    @property
    def current_version(self) -> int:
        """The highest version: the one new data keys are wrapped with."""
        return max(self._keys)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(self._keys)

    def __repr__(self) -> str:  # never show key bytes
        if self._index is None:
            return f"MasterKeyring(versions={self.versions!r})"
        return f"MasterKeyring(versions={self.versions!r}, index={self._index.versions!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKeyring):
            return NotImplemented
        return self.versions == other.versions and self._index == other._index and all(
            hmac.compare_digest(self._keys[v], other._keys[v]) for v in self._keys
        )

    def __hash__(self) -> int:
        return hash(self.versions)

    def wrap(self, data_key: bytes, associated: bytes, *, rand: Random = os.urandom,
             version: int | None = None) -> WrappedKey:
        """Seal ``data_key`` under the current master key (or ``version``), bound to ``associated``."""
        if len(data_key) != KEY_BYTES:
            raise ValueError(f"data key must be {KEY_BYTES} bytes, got {len(data_key)}")
        if version is None:
            version = self.current_version
        elif version not in self._keys:
            raise ValueError(f"master key version {version} is not in the keyring")
        blob = seal(self._keys[version], data_key, _wrap_associated(version, associated), rand=rand)
        return WrappedKey(version=version, blob=blob)

    def unwrap(self, wrapped: WrappedKey, associated: bytes) -> bytes:
        """Open a wrapped data key; :class:`DecryptionError` on failure or unknown version."""
        key = self._keys.get(wrapped.version)
        if key is None:
            raise DecryptionError(f"master key version {wrapped.version} is not in the keyring")
        data_key = open_sealed(key, wrapped.blob, _wrap_associated(wrapped.version, associated))
        if len(data_key) != KEY_BYTES:
            raise DecryptionError("wrapped data key has the wrong length")
        return data_key

    def has(self, version: int) -> bool:
        return version in self._keys

    def key_check(self, version: int, *, rand: Random = os.urandom) -> bytes:
        """A check value for ``version``: a known constant sealed under it, bound to the version."""
        key = self._keys.get(version)
        if key is None:
            raise ValueError(f"master key version {version} is not in the keyring")
        return seal(key, _CHECK_PLAINTEXT, _CHECK_MAGIC + version.to_bytes(4, "big"), rand=rand)

    def verify_key_check(self, version: int, check: bytes) -> bool:
        """True when this ring holds ``version`` and it is the key ``check`` was made with."""
        key = self._keys.get(version)
        if key is None:
            return False
        try:
            opened = open_sealed(key, check, _CHECK_MAGIC + version.to_bytes(4, "big"))
        except DecryptionError:
            return False
        return hmac.compare_digest(opened, _CHECK_PLAINTEXT)

    def rewrap(self, wrapped: WrappedKey, associated: bytes, *, rand: Random = os.urandom,
               version: int | None = None) -> WrappedKey:
        """Unwrap with the key's own version and wrap again with the current version (or ``version``)."""
        return self.wrap(self.unwrap(wrapped, associated), associated, rand=rand, version=version)

    def with_new_version(self, rand: Random = os.urandom) -> MasterKeyring:
        """A new ring holding every key of this one plus a fresh ``current_version + 1``."""
        keys = dict(self._keys)
        keys[self.current_version + 1] = new_data_key(rand)
        return MasterKeyring(keys, self._index)

    def up_to(self, version: int) -> MasterKeyring:
        """The versions up to ``version`` (whose current version is then ``version`` when held)."""
        kept = {v: k for v, k in self._keys.items() if v <= version}
        return MasterKeyring(kept, self._index) if kept else self

    def without_version(self, version: int) -> MasterKeyring:
        """A ring without ``version`` (retiring it); the current version cannot be removed."""
        if version not in self._keys:
            raise ValueError(f"master key version {version} is not in the keyring")
        if version == self.current_version:
            raise ValueError(f"master key version {version} is the current version")
        return MasterKeyring({v: k for v, k in self._keys.items() if v != version}, self._index)


# ---------------------------------------------------------------------------- key file

_LINE = re.compile(r"(?P<kind>index-)?v(?P<version>[0-9]+)\s*=\s*(?P<key>\S+)")
_HEADER = """\
# Health mail gateway master keys. KEEP THIS FILE SECRET.
# Anyone holding it together with a database dump can read every stored message.
# Store it outside the database and outside database backups, readable only by the gateway.
# Format: one line per version, "v<N> = <base64 of 32 bytes>"; the highest version wraps
# new data keys. Keep older versions until every data key has been re-wrapped.
# Index keys: lines "index-v<N> = <base64 of 32 bytes>" key the keyed indexes (HMAC-SHA256)
# that let the gateway find a patient by INS without storing the INS; with this file a dump's
# indexes can be tested against guessed INS, without it they identify nobody. Same rules:
# the highest version indexes new rows; keep older ones until 'gateway keys rotate' has
# re-indexed every row. A database that records index keys refuses a file that lacks them.
"""
_INDEX_COMMENT = "# Index keys (keyed indexes of INS and login names; see above)."


def _decode_key(text: str) -> bytes | None:
    # Accept standard (RFC 4648 §4) and URL-safe (RFC 4648 §5) alphabets, padding optional.
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_keyfile(text: str) -> MasterKeyring:
    """Parse key file text: master keys ``v<N> = ...`` and index keys ``index-v<N> = ...``.
    Errors name the line but never echo its content (key material)."""
    found: dict[str, dict[int, bytes]] = {"": {}, "index-": {}}
    defined_on: dict[tuple[str, int], int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise KeyfileError(f"line {number}: expected 'v<N> = <base64 key>' or 'index-v<N> = <base64 key>' "
                               "(comments start with '#')")
        kind = match["kind"] or ""
        version = int(match["version"])
        name = f"{kind}v{version}"
        if not 1 <= version <= MAX_VERSION:
            raise KeyfileError(f"line {number}: key version must be between 1 and {MAX_VERSION}")
        keys = found[kind]
        if version in keys:
            raise KeyfileError(
                f"line {number}: version {name} is already defined on line {defined_on[kind, version]}"
            )
        key = _decode_key(match["key"])
        if key is None:
            raise KeyfileError(f"line {number}: the key of {name} is not valid base64")
        if len(key) != KEY_BYTES:
            raise KeyfileError(
                f"line {number}: the key of {name} is {len(key)} bytes long, "
                f"expected {KEY_BYTES} bytes (256 bits)"
            )
        keys[version] = key
        defined_on[kind, version] = number
    if not found[""]:
        raise KeyfileError("no master key found: expected at least one line 'v<N> = <base64 key>'")
    index = IndexKeyring(found["index-"]) if found["index-"] else None
    return MasterKeyring(found[""], index)


def format_keyfile(ring: MasterKeyring) -> str:
    """Key file text for ``ring`` (standard base64); :func:`parse_keyfile` reads it back."""
    lines = [f"v{version} = {b64encode(ring._keys[version]).decode('ascii')}" for version in ring.versions]
    if ring.index is not None:
        lines += ["", _INDEX_COMMENT]
        lines += [f"index-v{version} = {b64encode(ring.index.key_bytes(version)).decode('ascii')}"
                  for version in ring.index.versions]
    return _HEADER + "\n" + "\n".join(lines) + "\n"
