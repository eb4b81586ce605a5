"""Password hashing (``gateway.accounts.pros``): argon2id by libsodium, earlier hashes still valid.

Every hash below costs one real argon2id computation (64 MiB, 3 passes), so the cases are few.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type

from gateway.accounts.pros import hash_password, verify_password

PASSWORD = "correct horse battery staple é"


def test_new_hashes_are_argon2id_with_the_stated_cost_and_verify() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + "x")


def test_new_hashes_are_standard_phc_strings() -> None:
    """Another argon2 implementation (argon2-cffi) reads them: no lock-in to libsodium."""
    assert PasswordHasher().verify(hash_password(PASSWORD), PASSWORD)


@pytest.mark.parametrize("kind", [Type.ID, Type.I])
def test_hashes_made_by_argon2_cffi_keep_working(kind: Type) -> None:
    """Accounts created before the switch hold argon2-cffi hashes with four lanes."""
    stored = PasswordHasher(type=kind).hash(PASSWORD)
    assert ",p=4$" in stored
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, "wrong")


@pytest.mark.parametrize("stored", [None, "", "not a hash", "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$",
                                    "$2b$12$abcdefghijklmnopqrstuu5Qp0rX0uH9lq0x4pJ5m3f8uJrQmQ9aW"])
def test_missing_or_malformed_hash_is_false(stored: str | None) -> None:
    assert verify_password(stored, PASSWORD) is False
