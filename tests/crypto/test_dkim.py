"""DKIM helpers: sign with a generated key, verify offline against a pinned record."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from crypto.dkim import (
    DkimResult,
    dns_txt_record,
    generate_dkim_key,
    pinned_dnsfunc,
    sign_message,
    verify_message,
)

DOMAIN = "hopital.example"
SELECTOR = "mss2025"

MESSAGE = (
    b"From: Dr Martin <martin@hopital.example>\r\n"
    b"To: 1234567890123@patient.example\r\n"
    b"Subject: Compte rendu\r\n"
    b"Date: Mon, 03 Mar 2025 10:00:00 +0100\r\n"
    b"Message-ID: <abc@hopital.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-MSS-Ins: 1234567890123\r\n"
    b"X-Unrelated: not signed\r\n"
    b"\r\n"
    b"Bonjour,\r\nVoici le compte rendu.\r\n"
)


@pytest.fixture(scope="module")
def key() -> tuple[bytes, bytes]:
    return generate_dkim_key()


def signed(message: bytes, private_pem: bytes, domain: str = DOMAIN) -> bytes:
    return sign_message(message, domain=domain, selector=SELECTOR, private_key_pem=private_pem) + message


def test_generated_key_formats(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    assert private_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    public = serialization.load_der_public_key(base64.b64decode(public_b64))
    assert public.key_size == 2048  # type: ignore[union-attr]


def test_small_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_dkim_key(512)


def test_dns_txt_record() -> None:
    assert dns_txt_record(b"QUJD") == "v=DKIM1; k=rsa; p=QUJD"


def test_signature_header_shape(key: tuple[bytes, bytes]) -> None:
    header = sign_message(MESSAGE, domain=DOMAIN, selector=SELECTOR, private_key_pem=key[0])
    assert header.startswith(b"DKIM-Signature: ") and header.endswith(b"\r\n")
    unfolded = b"".join(header.split(b"\r\n"))
    assert b"c=relaxed/relaxed" in unfolded and b"a=rsa-sha256" in unfolded
    assert b"d=hopital.example" in unfolded and b"s=mss2025" in unfolded
    h_tag = unfolded.split(b"h=")[1].split(b";")[0]
    names = [n.strip() for n in h_tag.split(b":")]
    assert names == [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"x-mss-ins",
    ]


def test_explicit_headers_must_include_from(key: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError):
        sign_message(MESSAGE, domain=DOMAIN, selector=SELECTOR, private_key_pem=key[0], headers=[b"to"])


def test_sign_then_verify_passes(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    result = verify_message(signed(MESSAGE, private_pem), dnsfunc=lookup)
    assert result == DkimResult(ok=True, domain=DOMAIN, selector=SELECTOR, reason="pass")


def test_relaxed_canonicalisation_tolerates_whitespace(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    message = signed(MESSAGE, private_pem).replace(b"Subject: Compte rendu", b"Subject:  Compte   rendu")
    assert verify_message(message, dnsfunc=lookup).ok


def test_modified_body_fails(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    message = signed(MESSAGE, private_pem).replace(b"compte rendu.", b"compte rendu modifie.")
    result = verify_message(message, dnsfunc=lookup)
    assert not result.ok
    assert result.domain == DOMAIN
    assert result.reason.startswith("fail: body hash mismatch")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"From: Dr Martin <martin@", b"From: Dr Pirate <martin@"),
        (b"X-MSS-Ins: 1234567890123", b"X-MSS-Ins: 9999999999999"),
    ],
)
def test_modified_signed_header_fails(key: tuple[bytes, bytes], old: bytes, new: bytes) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    message = signed(MESSAGE, private_pem).replace(old, new)
    result = verify_message(message, dnsfunc=lookup)
    assert not result.ok
    assert result.reason == "fail: signature does not verify"


def test_unsigned_header_may_change(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    message = signed(MESSAGE, private_pem).replace(b"not signed", b"changed")
    assert verify_message(message, dnsfunc=lookup).ok


def test_signature_for_another_domain_reports_it(key: tuple[bytes, bytes]) -> None:
    private_pem, public_b64 = key
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(public_b64))
    result = verify_message(signed(MESSAGE, private_pem, domain="pirate.example"), dnsfunc=lookup)
    assert not result.ok
    assert (result.domain, result.selector) == ("pirate.example", SELECTOR)
    assert result.reason.startswith("permerror:")


def test_wrong_pinned_key_fails(key: tuple[bytes, bytes]) -> None:
    private_pem, _ = key
    _, other_public = generate_dkim_key(1024)
    lookup = pinned_dnsfunc(SELECTOR, DOMAIN, dns_txt_record(other_public))
    result = verify_message(signed(MESSAGE, private_pem), dnsfunc=lookup)
    assert not result.ok and result.domain == DOMAIN


def test_unsigned_message() -> None:
    result = verify_message(MESSAGE, dnsfunc=pinned_dnsfunc(SELECTOR, DOMAIN, "v=DKIM1; k=rsa; p="))
    assert result == DkimResult(False, None, None, "none: no DKIM-Signature header")


def test_malformed_signature_is_permerror() -> None:
    message = b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example\r\n" + MESSAGE
    result = verify_message(message, dnsfunc=pinned_dnsfunc(SELECTOR, DOMAIN, "v=DKIM1; k=rsa; p="))
    assert not result.ok and result.reason.startswith("permerror:")
    assert result.domain == "x.example"


def test_pinned_dnsfunc() -> None:
    lookup = pinned_dnsfunc("Sel", "Example.ORG", "v=DKIM1; p=AAAA")
    assert lookup(b"sel._domainkey.example.org.") == b"v=DKIM1; p=AAAA"
    assert lookup(b"sel._domainkey.example.org", timeout=5) == b"v=DKIM1; p=AAAA"
    assert lookup(b"other._domainkey.example.org.") == b""
    assert lookup(b"sel._domainkey.evil.example.", timeout=1) == b""
