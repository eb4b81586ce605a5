"""DKIM helpers over dkimpy (RFC 6376): key generation, DNS record text, sign, verify.

Pure: DNS is a parameter (``dnsfunc``); :func:`pinned_dnsfunc` answers from a pinned record
so that verification works offline and in tests.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "SIGNED_HEADERS",
    "DkimResult",
    "DnsFunc",
    "dns_txt_record",
    "generate_dkim_key",
    "pinned_dnsfunc",
    "sign_message",
    "verify_message",
]

# dkimpy calls dnsfunc(name, timeout=...) with name like b"sel._domainkey.example.org."
DnsFunc = Callable[..., bytes]

# RFC 6376 §5.4.1: header fields worth signing; only those present in the message are
# listed in h= (plus our own X-MSS-* fields).
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"reply-to",
    b"in-reply-to",
    b"references",
)
_XMSS_PREFIX = b"x-mss-"
# RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits and SHOULD use 2048.
_MIN_RSA_BITS = 1024


@dataclass(frozen=True)
class DkimResult:
    """Outcome of checking the first DKIM-Signature.

    ``reason`` starts with an RFC 8601 §2.7.1 result word: pass, none, fail, permerror or
    temperror, then a short detail. ``domain``/``selector`` are the signature's d= and s=
    when a signature could be read, whatever the outcome.
    """

    ok: bool
    domain: str | None
    selector: str | None
    reason: str


def generate_dkim_key(bits: int = 2048) -> tuple[bytes, bytes]:
    """New RSA key: (PKCS#1 "RSA PRIVATE KEY" PEM, base64 DER SubjectPublicKeyInfo)."""
    if bits < _MIN_RSA_BITS:
        raise ValueError(f"DKIM RSA keys must have at least {_MIN_RSA_BITS} bits (RFC 8301 §3.2)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der)


def dns_txt_record(public_key_b64: bytes) -> str:
    """TXT record value for ``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1).

    A 2048-bit key gives a value over 255 characters: in a zone file it is written as
    several quoted strings, which resolvers concatenate (RFC 6376 §3.6.2.2).
    """
    return f"v=DKIM1; k=rsa; p={public_key_b64.decode('ascii')}"


def _present_headers(message: bytes) -> list[bytes]:
    headers, _body = dkim.rfc822_parse(message)
    names: list[bytes] = []
    for name, _value in headers:
        lower = bytes(name).lower()
        if (lower in SIGNED_HEADERS or lower.startswith(_XMSS_PREFIX)) and lower not in names:
            names.append(lower)
    rank = {name: i for i, name in enumerate(SIGNED_HEADERS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def sign_message(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key_pem: bytes,
    headers: Sequence[bytes] | None = None,
) -> bytes:
    """Return the ``DKIM-Signature:`` header line (CRLF-terminated) to prepend to ``message``.

    rsa-sha256 (RFC 8301 §3.1) with relaxed/relaxed canonicalisation (RFC 6376 §3.4.2,
    §3.4.4). Signs ``headers`` if given, otherwise those of :data:`SIGNED_HEADERS` and
    X-MSS-* present in the message. From must be signed (RFC 6376 §5.4).
    """
    include = [h.lower() for h in headers] if headers is not None else _present_headers(message)
    if b"from" not in include:
        raise ValueError("the From header field must be signed (RFC 6376 §5.4)")
    signature: bytes = dkim.sign(
        message,
        selector.encode("ascii"),
        domain.encode("ascii"),
        private_key_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=b"rsa-sha256",
        include_headers=include,
    )
    return signature


class _Collector(logging.Handler):
    """Keeps dkimpy's error messages: it logs, rather than raises, key lookup failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return None


def verify_message(message: bytes, *, dnsfunc: DnsFunc | None) -> DkimResult:
    """Verify the first DKIM-Signature of ``message``; ``dnsfunc=None`` uses real DNS."""
    collector = _Collector()
    logger = logging.Logger("crypto.dkim.verify", logging.ERROR)  # unregistered: no propagation
    logger.addHandler(collector)
    checker = dkim.DKIM(message, logger=logger, minkey=_MIN_RSA_BITS)
    if not checker.present():
        return DkimResult(False, None, None, "none: no DKIM-Signature header")
    kwargs: dict[str, Any] = {} if dnsfunc is None else {"dnsfunc": dnsfunc}
    try:
        ok = bool(checker.verify(**kwargs))
        failure = "fail: signature does not verify"
    except dkim.DKIMException as exc:
        # RFC 6376 §6.1.3: a body hash mismatch is a failed signature; anything else raised
        # (syntax, expiry, unusable key) makes the signature unverifiable: PERMFAIL.
        kind = "fail" if "body hash mismatch" in str(exc) else "permerror"
        ok, failure = False, f"{kind}: {exc}"
    fields = checker.signature_fields
    domain, selector = _text(fields.get(b"d")), _text(fields.get(b"s"))
    if ok:
        return DkimResult(True, domain, selector, "pass")
    for logged in collector.messages:  # key lookup problems (RFC 6376 §6.1.2)
        kind = "temperror" if logged.startswith("DnsTimeoutError") else "permerror"
        return DkimResult(False, domain, selector, f"{kind}: {logged}")
    return DkimResult(False, domain, selector, failure)


def pinned_dnsfunc(selector: str, domain: str, txt: str) -> DnsFunc:
    """A dnsfunc answering ``txt`` for ``<selector>._domainkey.<domain>.`` only, else b""."""
    expected = f"{selector}._domainkey.{domain}".rstrip(".").lower().encode("ascii")
    answer = txt.encode("ascii")

    def lookup(name: bytes, timeout: float = 5, **_: Any) -> bytes:
        return answer if name.rstrip(b".").lower() == expected else b""

    return lookup
