"""Envelope encryption: round trips, tampering, row swapping, wrong keys."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.envelope import (
    BLOB_VERSION,
    KEY_BYTES,
    NONCE_BYTES,
    ONE_SHOT_MAX,
    STEP_BYTES,
    TAG_BYTES,
    DecryptionError,
    aad,
    new_data_key,
    open_sealed,
    seal,
    sealed_size,
)

KEY = bytes(range(KEY_BYTES))
AD = aad("msg", "mailbox-1", "item-1")


def test_round_trip() -> None:
    blob = seal(KEY, b"Bonjour docteur", AD)
    assert open_sealed(KEY, blob, AD) == b"Bonjour docteur"


def test_empty_plaintext_round_trips() -> None:
    blob = seal(KEY, b"", AD)
    assert len(blob) == sealed_size(0) == 1 + NONCE_BYTES + TAG_BYTES
    assert open_sealed(KEY, blob, AD) == b""


def test_large_payload_round_trips() -> None:
    payload = os.urandom(25 * 1024 * 1024 + 17)
    blob = seal(KEY, payload, AD)
    assert len(blob) == sealed_size(len(payload))
    assert open_sealed(KEY, blob, AD) == payload


def test_blob_layout_and_injected_randomness() -> None:
    blob = seal(KEY, b"x", AD, rand=lambda n: b"\x07" * n)
    assert blob[0] == BLOB_VERSION
    assert blob[1 : 1 + NONCE_BYTES] == b"\x07" * NONCE_BYTES
    assert len(blob) == sealed_size(1)


def test_fresh_nonce_each_time() -> None:
    assert seal(KEY, b"same", AD) != seal(KEY, b"same", AD)


def test_short_random_source_is_rejected() -> None:
    with pytest.raises(ValueError):
        seal(KEY, b"x", AD, rand=lambda n: b"\x00" * (n - 1))


@pytest.mark.parametrize(
    ("region", "index"),
    [
        ("version", 0),
        ("nonce", 1),
        ("nonce-last", NONCE_BYTES),
        ("body", 1 + NONCE_BYTES),
        ("tag", -TAG_BYTES),
        ("tag-last", -1),
    ],
)
def test_tampering_any_region_fails(region: str, index: int) -> None:
    blob = bytearray(seal(KEY, b"confidential body", AD))
    blob[index] ^= 0x01
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(blob), AD)


@pytest.mark.parametrize(
    "other",
    [
        aad("msg", "mailbox-2", "item-1"),  # row moved to another mailbox
        aad("msg", "mailbox-1", "item-2"),  # row swapped with another message
        aad("summary", "mailbox-1", "item-1"),  # same row, other column
        b"",
    ],
)
def test_swapped_row_fails(other: bytes) -> None:
    blob = seal(KEY, b"secret", AD)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, blob, other)


def test_wrong_key_fails_without_leaking_it() -> None:
    blob = seal(KEY, b"secret", AD)
    other = new_data_key()
    with pytest.raises(DecryptionError) as info:
        open_sealed(other, blob, AD)
    text = str(info.value)
    assert other.hex() not in text and KEY.hex() not in text
    assert repr(other) not in text and "secret" not in text


@pytest.mark.parametrize("length", [0, 1, 1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES - 1])
def test_truncated_blob_fails(length: int) -> None:
    blob = seal(KEY, b"", AD)
    with pytest.raises(DecryptionError, match="truncated"):
        open_sealed(KEY, blob[:length], AD)


def test_truncated_tag_of_longer_blob_fails() -> None:
    blob = seal(KEY, b"a longer plaintext", AD)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, blob[:-1], AD)


def test_unknown_version_fails() -> None:
    blob = seal(KEY, b"x", AD)
    with pytest.raises(DecryptionError, match="version 2"):
        open_sealed(KEY, bytes([2]) + blob[1:], AD)


def test_bad_key_length_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        seal(b"short", b"x", AD)
    with pytest.raises(ValueError):
        open_sealed(b"short", seal(KEY, b"x", AD), AD)


def test_new_data_key_uses_rand() -> None:
    assert new_data_key(lambda n: b"\x05" * n) == b"\x05" * KEY_BYTES
    assert len(new_data_key()) == KEY_BYTES
    with pytest.raises(ValueError):
        new_data_key(lambda n: b"")


def test_aad_encoding_is_length_prefixed() -> None:
    assert aad("msg", "ab", "c") == b"hmg1" + b"\x00\x03msg" + b"\x00\x02ab" + b"\x00\x01c"
    # Field boundaries cannot be shifted.
    assert aad("msg", "ab", "c") != aad("msg", "a", "bc")
    assert aad("m", "sg", "") != aad("ms", "g", "")
    assert aad("msg", "é", "x") == b"hmg1\x00\x03msg\x00\x02\xc3\xa9\x00\x01x"


def test_aad_rejects_oversized_field() -> None:
    with pytest.raises(ValueError):
        aad("msg", "m" * 0x10000, "x")


def test_sealed_size() -> None:
    assert sealed_size(100) == 100 + 1 + NONCE_BYTES + TAG_BYTES
    with pytest.raises(ValueError):
        sealed_size(-1)


fields = st.text(max_size=40)


@given(plaintext=st.binary(max_size=2048), purpose=fields, mailbox=fields, item=fields)
def test_property_round_trip(plaintext: bytes, purpose: str, mailbox: str, item: str) -> None:
    associated = aad(purpose, mailbox, item)
    assert open_sealed(KEY, seal(KEY, plaintext, associated), associated) == plaintext


@settings(max_examples=300)
@given(plaintext=st.binary(max_size=512), data=st.data())
def test_property_any_single_byte_change_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = bytearray(seal(KEY, plaintext, AD))
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    delta = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    blob[index] ^= delta
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(blob), AD)


@given(
    plaintext=st.binary(max_size=256),
    data=st.data(),
)
def test_property_any_associated_data_change_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = seal(KEY, plaintext, AD)
    other = data.draw(st.tuples(fields, fields, fields).filter(lambda t: t != ("msg", "mailbox-1", "item-1")))
    with pytest.raises(DecryptionError):
        open_sealed(KEY, blob, aad(*other))


@pytest.mark.parametrize("size", [ONE_SHOT_MAX - 1, ONE_SHOT_MAX, ONE_SHOT_MAX + 1, ONE_SHOT_MAX + 3 * STEP_BYTES + 17])
def test_stepped_gcm_gives_the_one_shot_bytes_and_checks_the_tag(size: int) -> None:
    """Above ONE_SHOT_MAX, GCM runs in STEP_BYTES steps (the GIL is released between them): same blob
    as one AESGCM call, and any change, first or last byte, tag included, fails."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plaintext = os.urandom(size)
    nonce = b"\x07" * NONCE_BYTES
    blob = seal(KEY, plaintext, AD, rand=lambda n: nonce)
    assert blob == bytes([1]) + nonce + AESGCM(KEY).encrypt(nonce, plaintext, bytes([1]) + AD)
    assert open_sealed(KEY, blob, AD) == plaintext
    for index in (1 + NONCE_BYTES, len(blob) // 2, len(blob) - TAG_BYTES - 1, len(blob) - 1):
        bad = bytearray(blob)
        bad[index] ^= 0x01
        with pytest.raises(DecryptionError):
            open_sealed(KEY, bytes(bad), AD)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, blob, AD + b"x")


@pytest.mark.parametrize("sizes", [(0, 100), (90, ONE_SHOT_MAX - 90), (90, ONE_SHOT_MAX), (130, 3 * STEP_BYTES + 17),
                                   (STEP_BYTES + 5, STEP_BYTES - 3, 0, 11)])
def test_a_plaintext_in_parts_seals_as_their_concatenation(sizes: tuple[int, ...]) -> None:
    """Issue 22: the trace headers and the received message are sealed without being joined;
    the blob is the one of the joined bytes (same nonce), on both sides of ONE_SHOT_MAX."""
    parts = [os.urandom(n) for n in sizes]
    nonce = b"\x09" * NONCE_BYTES
    blob = seal(KEY, parts, AD, rand=lambda n: nonce)
    assert blob == seal(KEY, b"".join(parts), AD, rand=lambda n: nonce)
    assert open_sealed(KEY, blob, AD) == b"".join(parts)
