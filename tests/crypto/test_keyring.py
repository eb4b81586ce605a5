"""Master keyring: wrap/unwrap, rotation by re-wrapping, key file parsing and formatting."""

from __future__ import annotations

import base64

import pytest

from crypto.envelope import KEY_BYTES, DecryptionError, aad, new_data_key, open_sealed, seal
from crypto.keyring import KeyfileError, MasterKeyring, WrappedKey, format_keyfile, parse_keyfile

K1 = b"\x01" * KEY_BYTES
K2 = b"\x02" * KEY_BYTES
AD = aad("dk", "mailbox-1", "")


def ring1() -> MasterKeyring:
    return MasterKeyring({1: K1})


def test_versions_and_current() -> None:
    ring = MasterKeyring({3: K2, 1: K1})
    assert ring.versions == (1, 3)
    assert ring.current_version == 3


def test_wrap_unwrap() -> None:
    ring = ring1()
    data_key = new_data_key()
    wrapped = ring.wrap(data_key, AD)
    assert wrapped.version == 1
    assert data_key not in wrapped.blob
    assert ring.unwrap(wrapped, AD) == data_key


def test_unwrap_with_other_associated_data_fails() -> None:
    ring = ring1()
    wrapped = ring.wrap(new_data_key(), AD)
    with pytest.raises(DecryptionError):
        ring.unwrap(wrapped, aad("dk", "mailbox-2", ""))


def test_version_number_is_bound() -> None:
    # Same key bytes under two version numbers: relabelling the version must not open.
    ring = MasterKeyring({1: K1, 2: K1})
    wrapped = ring.wrap(new_data_key(), AD)
    assert wrapped.version == 2
    with pytest.raises(DecryptionError):
        ring.unwrap(WrappedKey(version=1, blob=wrapped.blob), AD)


def test_wrapped_key_is_not_a_plain_envelope_blob() -> None:
    ring = ring1()
    wrapped = ring.wrap(new_data_key(), AD)
    with pytest.raises(DecryptionError):
        open_sealed(K1, wrapped.blob, AD)


def test_tampered_wrapped_key_fails() -> None:
    ring = ring1()
    wrapped = ring.wrap(new_data_key(), AD)
    blob = bytearray(wrapped.blob)
    blob[-1] ^= 0x80
    with pytest.raises(DecryptionError):
        ring.unwrap(WrappedKey(1, bytes(blob)), AD)


def test_wrap_rejects_bad_data_key() -> None:
    with pytest.raises(ValueError):
        ring1().wrap(b"too short", AD)


def test_unknown_version_fails() -> None:
    with pytest.raises(DecryptionError, match="version 7"):
        ring1().unwrap(WrappedKey(7, b"\x01" + b"\x00" * 40), AD)


def test_rotation_rewraps_without_touching_messages() -> None:
    old = ring1()
    data_key = new_data_key()
    message = seal(data_key, b"compte rendu", aad("msg", "mailbox-1", "uuid-1"))
    wrapped = old.wrap(data_key, AD)

    new = old.with_new_version(rand=lambda n: b"\x09" * n)
    assert new.versions == (1, 2) and new.current_version == 2
    assert old.versions == (1,)  # the old ring is unchanged

    rewrapped = new.rewrap(wrapped, AD)
    assert rewrapped.version == 2
    assert new.unwrap(rewrapped, AD) == data_key
    assert new.unwrap(wrapped, AD) == data_key  # old wrapped keys still open mid-rotation
    with pytest.raises(DecryptionError):
        old.unwrap(rewrapped, AD)
    # The message blob is the same and still opens with the unwrapped key.
    assert open_sealed(new.unwrap(rewrapped, AD), message, aad("msg", "mailbox-1", "uuid-1")) == (
        b"compte rendu"
    )


def test_ring_without_old_version_cannot_unwrap_old_keys() -> None:
    wrapped = MasterKeyring({1: K1, 2: K2}).wrap(new_data_key(), AD)
    assert wrapped.version == 2
    old_wrapped = MasterKeyring({1: K1}).wrap(new_data_key(), AD)
    retired = MasterKeyring({2: K2})
    assert retired.unwrap(wrapped, AD)
    with pytest.raises(DecryptionError, match="version 1"):
        retired.unwrap(old_wrapped, AD)


@pytest.mark.parametrize(
    "keys",
    [{}, {0: K1}, {-1: K1}, {1: b"short"}, {2**32: K1}, {True: K1}],
)
def test_invalid_ring(keys: dict[int, bytes]) -> None:
    with pytest.raises(ValueError):
        MasterKeyring(keys)


def test_repr_hides_keys() -> None:
    text = repr(MasterKeyring({1: K1}))
    assert text == "MasterKeyring(versions=(1,))"


def test_equality() -> None:
    assert MasterKeyring({1: K1}) == MasterKeyring({1: K1})
    assert MasterKeyring({1: K1}) != MasterKeyring({1: K2})
    assert MasterKeyring({1: K1}) != MasterKeyring({2: K1})


# ---------------------------------------------------------------------------- key file


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_format_parse_round_trip() -> None:
    ring = ring1().with_new_version().with_new_version()
    text = format_keyfile(ring)
    assert parse_keyfile(text) == ring
    assert format_keyfile(parse_keyfile(text)) == text
    assert text.startswith("#")
    header = text.lower()
    assert "secret" in header and "outside the database" in header


def test_parse_comments_blanks_and_alphabets() -> None:
    odd = bytes([0xFB, 0xFF]) * 16  # standard base64 has '+' and '/', url-safe '-' and '_'
    text = (
        "# master keys\n"
        "\n"
        f"   v1 = {b64(K1)}   \n"
        "  # indented comment\n"
        f"v2={base64.urlsafe_b64encode(odd).decode().rstrip('=')}\r\n"
        f"v10 = {b64(odd)}\n"
    )
    ring = parse_keyfile(text)
    assert ring.versions == (1, 2, 10)
    assert ring == MasterKeyring({1: K1, 2: odd, 10: odd})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no master key"),
        ("# only comments\n\n", "no master key"),
        (f"# header\nkey1 = {b64(K1)}\n", "line 2: expected 'v<N> = <base64 key>'"),
        (f"v1 {b64(K1)}\n", "line 1: expected"),
        (f"v1 = {b64(K1)} trailing\n", "line 1: expected"),
        (f"v0 = {b64(K1)}\n", "line 1: key version must be between 1"),
        (f"v1 = {b64(K1)}\n\nv1 = {b64(K2)}\n", "line 3: version v1 is already defined on line 1"),
        ("v1 = not*base64!\n", "line 1: the key of v1 is not valid base64"),
        (f"\nv3 = {b64(b'x' * 16)}\n", "line 2: the key of v3 is 16 bytes long, expected 32"),
    ],
)
def test_keyfile_errors(text: str, message: str) -> None:
    with pytest.raises(KeyfileError) as info:
        parse_keyfile(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_keyfile_error_never_echoes_key_material() -> None:
    secret = b64(b"s" * 31)
    with pytest.raises(KeyfileError) as info:
        parse_keyfile(f"v1 = {secret}\n")
    assert secret not in str(info.value)
    with pytest.raises(KeyfileError) as info:
        parse_keyfile(f"v1 := {b64(K1)}\n")
    assert b64(K1) not in str(info.value)
