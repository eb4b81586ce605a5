"""DKIM helpers over dkimpy (RFC 6376): sign, verify (keys and records: :mod:`crypto.dkim_keys`).

Pure: DNS is a parameter (``dnsfunc``); :func:`pinned_dnsfunc` answers from a pinned record
so that verification works offline and in tests. Algorithms: rsa-sha256 (RFC 8301) and
ed25519-sha256 (RFC 8463), for signing and verifying.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dkim
import dkim.util
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from crypto.dkim_keys import MIN_RSA_BITS, dns_txt_record, generate_dkim_key

__all__ = [
    "SIGNED_HEADERS",
    "DkimResult",
    "DnsFunc",
    "dns_txt_record",
    "generate_dkim_key",
    "pinned_dnsfunc",
    "sign_message",
    "verify_message",
    "verify_signatures",
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
# RFC 6376 §6.1: a verifier may limit how many signatures it checks (each may cost a DNS query).
MAX_SIGNATURES = 4


@dataclass(frozen=True)
class DkimResult:
    """Outcome of checking one DKIM-Signature.

    ``reason`` starts with an RFC 8601 §2.7.1 result word: pass, none, fail, policy (not
    checked), permerror or temperror, then a short detail. ``domain``/``selector`` are the
    signature's d= and s= when they could be read, whatever the outcome.
    """

    ok: bool
    domain: str | None
    selector: str | None
    reason: str

    @property
    def result(self) -> str:
        """The RFC 8601 result word alone."""
        return self.reason.split(":", 1)[0]


def _present_headers(message: bytes) -> list[bytes]:
    headers, _body = dkim.rfc822_parse(message)
    names: list[bytes] = []
    for name, _value in headers:
        lower = bytes(name).lower()
        if (lower in SIGNED_HEADERS or lower.startswith(_XMSS_PREFIX)) and lower not in names:
            names.append(lower)
    rank = {name: i for i, name in enumerate(SIGNED_HEADERS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _signing_key(private_key_pem: bytes) -> tuple[bytes, bytes]:
    """(dkimpy private key, algorithm): RSA as PKCS#1 PEM, Ed25519 as the base64 32-byte seed."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("the DKIM private key is not an unencrypted PEM key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):  # RFC 8463 §3
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        return base64.b64encode(seed), b"ed25519-sha256"
    if isinstance(key, rsa.RSAPrivateKey):  # RFC 8301 §3.1
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"DKIM RSA keys must have at least {MIN_RSA_BITS} bits (RFC 8301 §3.2)")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        return pem, b"rsa-sha256"
    raise ValueError(f"unsupported DKIM key type {type(key).__name__} (RSA or Ed25519)")


def sign_message(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key_pem: bytes,
    headers: Sequence[bytes] | None = None,
) -> bytes:
    """Return the ``DKIM-Signature:`` header line (CRLF-terminated) to prepend to ``message``.

    rsa-sha256 (RFC 8301 §3.1) or ed25519-sha256 (RFC 8463), after the key's type, with
    relaxed/relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4). Signs ``headers`` if given,
    otherwise those of :data:`SIGNED_HEADERS` and X-MSS-* present in the message. From must
    be signed (RFC 6376 §5.4).
    """
    include = [h.lower() for h in headers] if headers is not None else _present_headers(message)
    if b"from" not in include:
        raise ValueError("the From header field must be signed (RFC 6376 §5.4)")
    key, algorithm = _signing_key(private_key_pem)
    signature: bytes = dkim.sign(
        message,
        selector.encode("ascii"),
        domain.encode("ascii"),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=algorithm,
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


_D_TAG_RE = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)")
_S_TAG_RE = re.compile(rb"(?:^|;)\s*s\s*=\s*([^;\s]+)")
_A_SHA1_RE = re.compile(rb"(?:^|;)\s*a\s*=\s*rsa-sha1\s*(?:;|$)", re.I)


def _claimed(value: bytes) -> tuple[str | None, str | None]:
    """The d= and s= a DKIM-Signature claims, read leniently (even from a malformed one)."""
    try:
        tags = dkim.util.parse_tag_value(value)
        return _text(tags.get(b"d")), _text(tags.get(b"s"))
    except dkim.util.InvalidTagValueList:
        d, sel = _D_TAG_RE.search(value), _S_TAG_RE.search(value)
        return (_text(d.group(1)) if d else None), (_text(sel.group(1)) if sel else None)


def _verify_one(checker: dkim.DKIM, collector: _Collector, idx: int, domain: str | None,
                selector: str | None, dnsfunc: DnsFunc | None) -> DkimResult:
    collector.messages.clear()
    kwargs: dict[str, Any] = {} if dnsfunc is None else {"dnsfunc": dnsfunc}
    try:
        ok = bool(checker.verify(idx=idx, **kwargs))
        failure = "fail: signature does not verify"
    except dkim.DKIMException as exc:
        # RFC 6376 §6.1.3: a body hash mismatch is a failed signature; anything else raised
        # (syntax, expiry, unusable key) makes the signature unverifiable: PERMFAIL.
        kind = "fail" if "body hash mismatch" in str(exc) else "permerror"
        ok, failure = False, f"{kind}: {exc}"
    if ok:
        return DkimResult(True, domain, selector, "pass")
    for logged in collector.messages:  # key lookup problems (RFC 6376 §6.1.2)
        kind = "temperror" if logged.startswith("DnsTimeoutError") else "permerror"
        return DkimResult(False, domain, selector, f"{kind}: {logged}")
    return DkimResult(False, domain, selector, failure)


def verify_signatures(
    message: bytes, *, dnsfunc: DnsFunc | None, wanted: Callable[[str], bool] | None = None,
    limit: int = MAX_SIGNATURES,
) -> list[DkimResult]:
    """Check the DKIM-Signatures of ``message``, topmost first (RFC 6376 §6.1), each on its own.

    Only signatures whose d= ``wanted`` accepts are verified, at most ``limit`` of them; the
    others come back unverified with the reason ``policy: not checked``. ``dnsfunc=None``
    uses real DNS. An empty list: the message is not signed.
    """
    collector = _Collector()
    logger = logging.Logger("crypto.dkim.verify", logging.ERROR)  # unregistered: no propagation
    logger.addHandler(collector)
    checker = dkim.DKIM(message, logger=logger, minkey=MIN_RSA_BITS)
    values = [bytes(v) for n, v in checker.headers if bytes(n).lower() == b"dkim-signature"]
    results: list[DkimResult] = []
    checked = 0
    for idx, value in enumerate(values):
        domain, selector = _claimed(value)
        if checked >= limit or (wanted is not None and (domain is None or not wanted(domain))):
            results.append(DkimResult(False, domain, selector, "policy: not checked"))
            continue
        checked += 1
        if _A_SHA1_RE.search(value):  # RFC 8301 §3.1: verifiers MUST NOT consider rsa-sha1 valid
            results.append(DkimResult(False, domain, selector, "fail: rsa-sha1 is not acceptable (RFC 8301)"))
            continue
        results.append(_verify_one(checker, collector, idx, domain, selector, dnsfunc))
    return results


def verify_message(message: bytes, *, dnsfunc: DnsFunc | None) -> DkimResult:
    """Verify the first DKIM-Signature of ``message``; ``dnsfunc=None`` uses real DNS."""
    results = verify_signatures(message, dnsfunc=dnsfunc, limit=1)
    if not results:
        return DkimResult(False, None, None, "none: no DKIM-Signature header")
    return results[0]


def pinned_dnsfunc(selector: str, domain: str, txt: str) -> DnsFunc:
    """A dnsfunc answering ``txt`` for ``<selector>._domainkey.<domain>.`` only, else b"".

    ``txt`` is a key record (RFC 6376 §3.6.1), e.g. :func:`crypto.dkim_keys.dns_txt_record`.
    """
    expected = f"{selector}._domainkey.{domain}".rstrip(".").lower().encode("ascii")
    answer = txt.encode("ascii")

    def lookup(name: bytes, timeout: float = 5, **_: Any) -> bytes:
        return answer if name.rstrip(b".").lower() == expected else b""

    return lookup
