"""Keyed indexes (issue 20): known-answer vectors, purpose separation, versions, the key file section."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from crypto import IndexKeyring as ExportedIndexKeyring
from crypto import blind_digest as exported_digest
from crypto.blind_index import DIGEST_BYTES, BlindDigest, IndexKeyring, blind_digest, check_purpose
from crypto.keyring import KeyfileError, MasterKeyring, format_keyfile, parse_keyfile

KEY = bytes(range(32))
INS = "733118287092708"  # routing.ins.synthetic_ins(random.Random(20)): synthetic, valid key
K1 = b"\x01" * 32
K2 = b"\x02" * 32

# Computed with `openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f` over the messages
# b"hmg-bi1\0<purpose>\0<value>" and b"hmg-bi-kc1\0" + version (4 bytes, big-endian).
KAT_INS = "be5f44478180120c96b80b622d2a717d2db49d7704d4781dc74f8d465ea0a20f"
KAT_LOGIN_NAME = "b2e6b2790c8d036d84318a758536429a2f00bb0cf749a77e17365927bee088db"
KAT_CHECK_V1 = "e1acedffc26022da51e8bc2337b99908eb16d647fabcaed2b0392d7cd7e41573"


def test_known_answer_vectors() -> None:
    assert blind_digest(KEY, "ins", INS).hex() == KAT_INS
    assert blind_digest(KEY, "login-name", INS).hex() == KAT_LOGIN_NAME
    assert blind_digest(KEY, "ins", INS.encode()) == blind_digest(KEY, "ins", INS)
    assert IndexKeyring({1: KEY}).key_check(1).hex() == KAT_CHECK_V1
    assert len(bytes.fromhex(KAT_INS)) == DIGEST_BYTES
    assert exported_digest is blind_digest and ExportedIndexKeyring is IndexKeyring


def test_is_hmac_sha256_rfc4231_primitive() -> None:
    # RFC 4231 test case 2 (key "Jefe"): the primitive underneath is plain HMAC-SHA256.
    mac = hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).hexdigest()
    assert mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    expected = hmac.new(KEY, b"hmg-bi1\x00network\x00" + b"192.0.2.0/24", hashlib.sha256).digest()
    assert blind_digest(KEY, "network", "192.0.2.0/24") == expected


def test_purposes_are_separated_and_unambiguous() -> None:
    assert blind_digest(KEY, "ins", INS) != blind_digest(KEY, "login-name", INS)
    # "ins" + "\0x" vs "ins\0" + "x": the NUL-free label keeps the split unambiguous.
    with pytest.raises(ValueError):
        blind_digest(KEY, "ins\x00", "x")
    for bad in ("", "INS", "1ins", "ins name", "ins/x", "é", "a" * 65):
        with pytest.raises(ValueError, match="purpose"):
            check_purpose(bad)
    assert check_purpose("login-name") == b"login-name"


def test_key_length_and_versions_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        blind_digest(b"short", "ins", INS)
    with pytest.raises(ValueError):
        IndexKeyring({})
    with pytest.raises(ValueError):
        IndexKeyring({0: K1})
    with pytest.raises(ValueError):
        IndexKeyring({1: b"x" * 16})


def test_digests_try_every_version_newest_first() -> None:
    ring = IndexKeyring({1: K1, 2: K2})
    assert ring.current_version == 2
    assert ring.digest("ins", INS) == blind_digest(K2, "ins", INS)
    assert ring.digest("ins", INS, 1) == blind_digest(K1, "ins", INS)
    assert ring.digests("ins", INS) == (BlindDigest(2, blind_digest(K2, "ins", INS)),
                                        BlindDigest(1, blind_digest(K1, "ins", INS)))
    assert ring.digests("ins", INS, versions=(1, 7)) == (BlindDigest(1, blind_digest(K1, "ins", INS)),)
    with pytest.raises(ValueError):
        ring.digest("ins", INS, 3)


def test_key_checks() -> None:
    ring = IndexKeyring({1: K1, 2: K2})
    check = ring.key_check(1)
    assert ring.verify_key_check(1, check)
    assert not ring.verify_key_check(2, check)  # bound to the version
    assert not IndexKeyring({1: K2}).verify_key_check(1, check)  # another installation's index-v1
    assert not IndexKeyring({2: K2}).verify_key_check(1, check)
    assert check != blind_digest(K1, "ins", (1).to_bytes(4, "big"))


def test_rotation_helpers_and_repr() -> None:
    ring = IndexKeyring({1: K1}).with_new_version(rand=lambda n: b"\x03" * n)
    assert ring.versions == (1, 2) and ring.digest("ins", INS) == blind_digest(b"\x03" * 32, "ins", INS)
    assert ring.up_to(1) == IndexKeyring({1: K1})
    assert ring.without_version(1).versions == (2,)
    with pytest.raises(ValueError):
        ring.without_version(2)
    assert repr(ring) == "IndexKeyring(versions=(1, 2))"
    assert IndexKeyring.generate().versions == (1,)


# ---------------------------------------------------------------------------- the key file section

def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_keyfile_index_section_round_trip() -> None:
    ring = MasterKeyring({1: K1}, IndexKeyring({1: K2, 3: KEY}))
    text = format_keyfile(ring)
    assert f"\nv1 = {b64(K1)}\n" in text
    assert f"\nindex-v1 = {b64(K2)}\nindex-v3 = {b64(KEY)}\n" in text
    assert "index-v<N>" in text.split("\n\n")[0]  # the header explains the section
    parsed = parse_keyfile(text)
    assert parsed == ring and parsed.index == IndexKeyring({1: K2, 3: KEY})
    assert format_keyfile(parsed) == text
    assert repr(parsed) == "MasterKeyring(versions=(1,), index=(1, 3))"


def test_keyfile_without_index_section_still_parses() -> None:
    ring = parse_keyfile(f"v1 = {b64(K1)}\n")
    assert ring.index is None
    assert "index-v" not in format_keyfile(ring).split("\n\n", 1)[1]


def test_master_ring_operations_keep_the_index_keys() -> None:
    index = IndexKeyring({1: K2})
    ring = MasterKeyring({1: K1}, index)
    assert ring.with_new_version().index == index
    assert ring.with_new_version().up_to(1).index == index
    assert ring.with_new_version().without_version(1).index == index
    assert ring != MasterKeyring({1: K1})
    assert MasterKeyring({1: K1}).with_index(index) == ring


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"index-v1 = {b64(K2)}\n", "no master key"),
        (f"v1 = {b64(K1)}\nindex-v1 = {b64(K2)}\nindex-v1 = {b64(K1)}\n",
         "line 3: version index-v1 is already defined on line 2"),
        (f"v1 = {b64(K1)}\nindex-v0 = {b64(K2)}\n", "line 2: key version must be between 1"),
        (f"v1 = {b64(K1)}\nindex-v2 = {b64(b'y' * 20)}\n", "line 2: the key of index-v2 is 20 bytes long"),
        (f"v1 = {b64(K1)}\nindex v2 = {b64(K2)}\n", "line 2: expected"),
        (f"v1 = {b64(K1)}\nidx-v2 = {b64(K2)}\n", "line 2: expected"),
    ],
)
def test_keyfile_index_errors(text: str, message: str) -> None:
    with pytest.raises(KeyfileError) as info:
        parse_keyfile(text)
    assert message in str(info.value)
    assert b64(K2) not in str(info.value)
