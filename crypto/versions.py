"""Versioned 256-bit keys: the one validation the master keyring and the index keyring share."""

from __future__ import annotations

from collections.abc import Mapping

from crypto.envelope import KEY_BYTES

MAX_VERSION = 0xFFFFFFFF  # encoded on 4 bytes in associated data and check values


def checked_keys(keys: Mapping[int, bytes], *, ring: str, what: str, prefix: str) -> dict[int, bytes]:
    """``keys`` sorted by version, after checking each version (an integer in 1..MAX_VERSION) and
    key length; ``ValueError`` naming ``ring`` ("a master keyring"), ``what`` ("master key") and the
    key as the key file names it (``prefix`` + version: "v1", "index-v1")."""
    if not keys:
        raise ValueError(f"{ring} needs at least one key")
    for version, key in keys.items():
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"{what} version must be an integer, got {type(version).__name__}")
        if not 1 <= version <= MAX_VERSION:
            raise ValueError(f"{what} version must be between 1 and {MAX_VERSION}, got {version}")
        if len(key) != KEY_BYTES:
            raise ValueError(f"{what} {prefix}{version} must be {KEY_BYTES} bytes, got {len(key)}")
    return {v: bytes(keys[v]) for v in sorted(keys)}
