"""DKIM public keys in the forms operators have (issue 17), Ed25519 (RFC 8463), several signatures."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from crypto.dkim import pinned_dnsfunc, sign_message, verify_message, verify_signatures
from crypto.dkim_keys import (
    PublicKey,
    PublicKeyError,
    dns_txt_record,
    generate_dkim_key,
    key_type_of,
    parse_public_key,
    zone_record,
)
from tests.conftest import require

MESSAGE = (b"From: Dr Martin <martin@hopital.example>\r\nTo: 1234567890123@patient.example\r\n"
           b"Subject: Compte rendu\r\nDate: Mon, 03 Mar 2025 10:00:00 +0100\r\n"
           b"Message-ID: <abc@hopital.example>\r\n\r\nBonjour,\r\nVoici le compte rendu.\r\n")


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, str]:
    private, public = generate_dkim_key(2048)
    return private, public.decode()


def opendkim_txt(selector: str, domain: str, p: str) -> str:
    """The .txt stub as opendkim-genkey 2.11 writes it (tabs, split quoted strings, comment)."""
    return (f'{selector}._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n\t  "p={p[:250]}"\n'
            f'\t  "{p[250:]}" )  ; ----- DKIM key {selector} for {domain}\n')


def test_opendkim_txt_record(rsa_key: tuple[bytes, str]) -> None:
    _private, p = rsa_key
    assert parse_public_key(opendkim_txt("sel", "example.test", p)) == PublicKey("rsa", p)


@pytest.mark.parametrize("shape", [
    "v=DKIM1; k=rsa; p={p}",
    "v=DKIM1;k=rsa;p={p};",
    "p={p}",
    "{p}",
    "{wrapped}",
    '"v=DKIM1; k=rsa; p={p}"',
    'sel._domainkey.example.test. 3600 IN TXT "v=DKIM1; k=rsa; " "p={p}"',
    "v=DKIM1; k=rsa; t=s; s=email; p={wrapped}",
])
def test_record_and_bare_forms(rsa_key: tuple[bytes, str], shape: str) -> None:
    _private, p = rsa_key
    wrapped = "\n".join(p[i:i + 64] for i in range(0, len(p), 64))
    assert parse_public_key(shape.format(p=p, wrapped=wrapped)) == PublicKey("rsa", p)


def test_pem_forms(rsa_key: tuple[bytes, str]) -> None:
    private, p = rsa_key
    key = serialization.load_pem_private_key(private, None).public_key()
    spki = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert parse_public_key(spki.decode()) == PublicKey("rsa", p)
    assert parse_public_key(pkcs1.decode()) == PublicKey("rsa", p)  # normalised to SubjectPublicKeyInfo
    pkcs1_b64 = base64.b64encode(key.public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.PKCS1)).decode()
    assert parse_public_key(f"v=DKIM1; p={pkcs1_b64}") == PublicKey("rsa", p)


def test_ed25519_forms() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    expected = PublicKey("ed25519", raw)
    assert parse_public_key(pem) == expected
    assert parse_public_key(f"v=DKIM1; k=ed25519; p={raw}") == expected
    assert parse_public_key(raw) == expected
    assert key_type_of(raw) == "ed25519" and dns_txt_record(raw) == f"v=DKIM1; k=ed25519; p={raw}"


@pytest.mark.parametrize(("text", "says"), [
    ("", "no public key"),
    ("hello world", "no public key found"),
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; h=sha1; k=rsa; p=QUJD", "sha256"),
    ("v=DKIM1; k=dsa; p=QUJD", "unsupported key type"),
    ("v=DKIM2; p=QUJD", "version"),
    ("v=DKIM1; p=QUJD; p=QUJD", "twice"),
    ("v=DKIM1; k=ed25519; p=QUJD", "32 bytes"),
    ("p=QUJD!!", "not base64"),
    ("QUJDREVG", "no public key found .*not an RSA public key"),
    ("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n", "private key"),
    ("-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", "not a public key"),
])
def test_refusals_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(PublicKeyError, match=says):
        parse_public_key(text)


def test_small_rsa_keys_are_refused() -> None:
    small = rsa.RSAPublicNumbers(65537, (1 << 511) + 0x1235).public_key()  # 512 bits
    der = small.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(PublicKeyError, match="at least 1024"):
        parse_public_key(base64.b64encode(der).decode())


def test_zone_record_splits_long_values_and_reads_back(rsa_key: tuple[bytes, str]) -> None:
    _private, p = rsa_key
    line = zone_record("hmg202611", "patients.test", p)
    assert line.startswith('hmg202611._domainkey.patients.test. IN TXT ( "v=DKIM1; k=rsa; p=')
    strings = line[line.index("(") + 1:line.rindex(")")].split('" "')
    assert len(strings) > 1 and all(len(s.strip(' "')) <= 255 for s in strings)
    assert parse_public_key(line) == PublicKey("rsa", p)
    short = zone_record("s", "x.test", "QUJD", "ed25519")
    assert short == 's._domainkey.x.test. IN TXT "v=DKIM1; k=ed25519; p=QUJD"'


def test_ed25519_sign_and_verify() -> None:
    private, public = generate_dkim_key(key_type="ed25519")
    header = sign_message(MESSAGE, domain="hopital.example", selector="ed", private_key_pem=private)
    assert b"a=ed25519-sha256" in header
    record = parse_public_key(public.decode()).record
    result = verify_message(header + MESSAGE, dnsfunc=pinned_dnsfunc("ed", "hopital.example", record))
    assert result.ok, result.reason
    tampered = (header + MESSAGE).replace(b"Voici", b"Voila")
    assert not verify_message(tampered, dnsfunc=pinned_dnsfunc("ed", "hopital.example", record)).ok


def test_pkcs8_rsa_private_keys_sign(rsa_key: tuple[bytes, str]) -> None:
    private, p = rsa_key
    pkcs8 = serialization.load_pem_private_key(private, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    header = sign_message(MESSAGE, domain="hopital.example", selector="s", private_key_pem=pkcs8)
    assert verify_message(header + MESSAGE, dnsfunc=pinned_dnsfunc("s", "hopital.example", dns_txt_record(p))).ok


def test_every_wanted_signature_is_checked(rsa_key: tuple[bytes, str]) -> None:
    """RFC 8463 §5 dual signing (RSA and Ed25519), plus a third party's signature left unchecked."""
    private, p = rsa_key
    ed_private, ed_public = generate_dkim_key(key_type="ed25519")
    other, _ = generate_dkim_key(1024)
    message = sign_message(MESSAGE, domain="hopital.example", selector="rsa", private_key_pem=private) + MESSAGE
    message = sign_message(message, domain="hopital.example", selector="ed", private_key_pem=ed_private) + message
    message = sign_message(message, domain="list.example", selector="l", private_key_pem=other) + message
    records = {b"rsa._domainkey.hopital.example.": dns_txt_record(p).encode(),
               b"ed._domainkey.hopital.example.": dns_txt_record(ed_public).encode()}

    def dns(name: bytes, timeout: float = 5) -> bytes:
        return records.get(name, b"")

    results = verify_signatures(message, dnsfunc=dns, wanted=lambda d: d == "hopital.example")
    assert [(r.domain, r.selector, r.result) for r in results] == [
        ("list.example", "l", "policy"), ("hopital.example", "ed", "pass"), ("hopital.example", "rsa", "pass")]
    assert verify_signatures(MESSAGE, dnsfunc=dns) == []
    limited = verify_signatures(message, dnsfunc=dns, limit=1)
    assert [r.result for r in limited] == ["permerror", "policy", "policy"]


def test_malformed_signature_still_names_its_domain() -> None:
    message = b"DKIM-Signature: v=1; d=hopital.example; s=x; garbage\r\n" + MESSAGE
    [result] = verify_signatures(message, dnsfunc=lambda name, timeout=5: b"")
    assert (result.domain, result.result) == ("hopital.example", "permerror")


def test_real_opendkim_genkey_output(tmp_path: Path) -> None:
    """The .txt and .private files of Debian's opendkim-genkey (opendkim-tools)."""
    require(None if shutil.which("opendkim-genkey") else "opendkim-genkey not found (scripts/system-deps "
            "installs opendkim-tools)", "opendkim-genkey")
    subprocess.run(["opendkim-genkey", "-D", str(tmp_path), "-s", "ok2026", "-d", "hopital.example"],
                   check=True, timeout=60, capture_output=True)
    pinned = parse_public_key((tmp_path / "ok2026.txt").read_text())
    assert pinned.key_type == "rsa"
    header = sign_message(MESSAGE, domain="hopital.example", selector="ok2026",
                          private_key_pem=(tmp_path / "ok2026.private").read_bytes())
    result = verify_message(header + MESSAGE, dnsfunc=pinned_dnsfunc("ok2026", "hopital.example", pinned.record))
    assert result.ok, result.reason


def test_rsa_sha1_signatures_are_not_valid(rsa_key: tuple[bytes, str]) -> None:
    """RFC 8301 §3.1: verifiers MUST NOT consider rsa-sha1 signatures valid."""
    import dkim

    private, p = rsa_key
    header = dkim.sign(MESSAGE, b"s", b"hopital.example", private, signature_algorithm=b"rsa-sha1",
                       include_headers=[b"from", b"subject"])
    result = verify_message(header + MESSAGE, dnsfunc=pinned_dnsfunc("s", "hopital.example", dns_txt_record(p)))
    assert not result.ok and result.result == "fail" and "rsa-sha1" in result.reason
