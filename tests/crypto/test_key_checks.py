"""Key-check values and the keyring operations rotation needs (issue 14)."""

from __future__ import annotations

import pytest

from crypto.envelope import KEY_BYTES, DecryptionError, aad, new_data_key
from crypto.keyring import MasterKeyring, WrappedKey

K1 = b"\x01" * KEY_BYTES
K2 = b"\x02" * KEY_BYTES
AD = aad("dk", "mailbox-1", "data-key")


def test_key_check_opens_only_with_the_same_key_and_version() -> None:
    ring = MasterKeyring({1: K1, 2: K2})
    check = ring.key_check(1)
    assert ring.verify_key_check(1, check)
    assert not ring.verify_key_check(2, check)  # bound to its version number
    assert not MasterKeyring({1: K2}).verify_key_check(1, check)  # another installation's v1
    assert not MasterKeyring({2: K2}).verify_key_check(1, check)  # version absent
    assert not ring.verify_key_check(1, check[:-1] + bytes([check[-1] ^ 1]))
    assert ring.key_check(1) != check  # random nonce: nothing to compare across databases
    relabelled = MasterKeyring({1: K1, 2: K1})  # same bytes under two numbers
    assert not relabelled.verify_key_check(2, relabelled.key_check(1))


def test_a_check_value_never_opens_as_a_wrapped_data_key() -> None:
    ring = MasterKeyring({1: K1})
    with pytest.raises(DecryptionError):
        ring.unwrap(WrappedKey(1, ring.key_check(1)), b"")
    with pytest.raises(ValueError):
        ring.key_check(3)


def test_wrap_with_an_older_version_and_rewrap_to_a_chosen_one() -> None:
    ring = MasterKeyring({1: K1, 2: K2})
    data_key = new_data_key()
    old = ring.wrap(data_key, AD, version=1)
    assert old.version == 1 and ring.unwrap(old, AD) == data_key
    again = ring.rewrap(old, AD, version=2)
    assert again.version == 2 and ring.unwrap(again, AD) == data_key
    with pytest.raises(ValueError):
        ring.wrap(data_key, AD, version=5)


def test_up_to_and_without_version() -> None:
    ring = MasterKeyring({1: K1, 2: K2, 3: K1})
    assert ring.up_to(2).versions == (1, 2) and ring.up_to(2).current_version == 2
    assert ring.up_to(9) == ring
    assert ring.without_version(1).versions == (2, 3)
    with pytest.raises(ValueError, match="current"):
        ring.without_version(3)
    with pytest.raises(ValueError, match="not in the keyring"):
        ring.without_version(7)
    assert ring.has(2) and not ring.has(4)
