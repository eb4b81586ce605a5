"""DKIM keys: generation, the key record (RFC 6376 §3.6.1), and reading public keys in the
forms operators hand them over (issue 17).

Two algorithms: rsa-sha256 (RFC 8301: at least 1024 bits, 2048 advised) and ed25519-sha256
(RFC 8463: the ``p=`` value is the raw 32-byte public key, not a SubjectPublicKeyInfo).
A public key is accepted as

* a PEM public key (``BEGIN PUBLIC KEY``, SubjectPublicKeyInfo, RSA or Ed25519, or
  ``BEGIN RSA PUBLIC KEY``, PKCS#1);
* a DNS TXT record as ``opendkim-genkey`` writes it: ``sel._domainkey IN TXT ( "v=DKIM1;
  h=sha256; k=rsa; " "p=MIIB..." "..." ) ; comment``: quoted character-strings that are
  concatenated (RFC 1035 §5.1, RFC 6376 §3.6.2.2), or the unquoted tag list;
* the bare ``p=`` value (base64).

:func:`parse_public_key` returns the canonical pinned form: the key type and the ``p=``
value as a DNS record would carry it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

KeyType = Literal["rsa", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("rsa", "ed25519")
# RFC 8301 §3.2: verifiers MUST be able to validate 1024-bit RSA keys and refuse smaller ones.
MIN_RSA_BITS = 1024
ED25519_BYTES = 32  # RFC 8032 §5.1.5
_MAX_TEXT = 16_384  # a key record is a few hundred characters; a zone file stub about 600

__all__ = [
    "KEY_TYPES",
    "MIN_RSA_BITS",
    "KeyType",
    "PublicKey",
    "PublicKeyError",
    "dns_txt_record",
    "generate_dkim_key",
    "key_type_of",
    "parse_public_key",
    "zone_record",
]


class PublicKeyError(ValueError):
    """The text holds no usable DKIM public key; the message says what is wrong."""


@dataclass(frozen=True)
class PublicKey:
    """A DKIM public key as a key record carries it: ``k=`` and the base64 ``p=`` value."""

    key_type: KeyType
    p: str

    @property
    def record(self) -> str:
        return dns_txt_record(self.p, self.key_type)


def generate_dkim_key(bits: int = 2048, *, key_type: KeyType = "rsa") -> tuple[bytes, bytes]:
    """A new key: (private key PEM, base64 ``p=`` value).

    RSA: PKCS#1 "RSA PRIVATE KEY" PEM and the DER SubjectPublicKeyInfo; Ed25519 (RFC 8463):
    PKCS#8 PEM and the raw 32-byte public key (``bits`` is ignored).
    """
    if key_type == "ed25519":
        ed_key = ed25519.Ed25519PrivateKey.generate()
        ed_pem = ed_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return ed_pem, base64.b64encode(raw)
    if bits < MIN_RSA_BITS:
        raise ValueError(f"DKIM RSA keys must have at least {MIN_RSA_BITS} bits (RFC 8301 §3.2)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, base64.b64encode(public_der)


def key_type_of(p: str | bytes) -> KeyType:
    """The algorithm of a ``p=`` value: 32 raw bytes are an Ed25519 key, anything else RSA
    (an RSA SubjectPublicKeyInfo is never that short)."""
    try:
        raw = base64.b64decode(p, validate=False)
    except (binascii.Error, ValueError):
        return "rsa"
    return "ed25519" if len(raw) == ED25519_BYTES else "rsa"


def dns_txt_record(public_key_b64: str | bytes, key_type: KeyType | None = None) -> str:
    """TXT record value for ``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1).

    A 2048-bit key gives a value over 255 characters: in a zone file it is written as
    several quoted strings (:func:`zone_record`), which resolvers concatenate.
    """
    p = public_key_b64.decode("ascii") if isinstance(public_key_b64, bytes) else public_key_b64
    return f"v=DKIM1; k={key_type or key_type_of(p)}; p={p}"


def zone_record(selector: str, domain: str, public_key_b64: str | bytes, key_type: KeyType | None = None) -> str:
    """The zone-file line publishing a key, character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    value = dns_txt_record(public_key_b64, key_type)
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
    strings = " ".join(f'"{c}"' for c in chunks)
    body = strings if len(chunks) == 1 else f"( {strings} )"
    return f"{selector}._domainkey.{domain.rstrip('.')}. IN TXT {body}"


# --- reading keys ---------------------------------------------------------------------------------

_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_TAG_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NOT_FOUND = "no public key found (expected a PEM public key, a DKIM key record or its p= value)"


def _strip_zone_comment(line: str) -> str:
    """Drop a ``;`` comment outside quotes (RFC 1035 §5.1)."""
    quoted = False
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return line[:i]
    return line


def _unquote(text: str) -> str | None:
    """The concatenated character-strings of a zone-file TXT record, or None if there are none."""
    body = "\n".join(_strip_zone_comment(line) for line in text.splitlines())
    strings = _QUOTED_RE.findall(body)
    if not strings:
        return None
    return "".join(re.sub(r"\\(.)", r"\1", s) for s in strings)


def _tags(text: str) -> dict[str, str] | None:
    """RFC 6376 §3.2 tag=value list, whitespace removed from values; None if it is not one."""
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not _TAG_NAME_RE.match(name):
            return None
        if name in tags:  # RFC 6376 §3.2: a duplicate tag makes the whole list invalid
            raise PublicKeyError(f"the key record has the tag {name}= twice")
        tags[name] = re.sub(r"\s+", "", value)
    return tags if "p" in tags else None


def _from_record(tags: dict[str, str]) -> PublicKey:
    if tags.get("v", "DKIM1") != "DKIM1":  # RFC 6376 §3.6.1: v= must come first and be DKIM1
        raise PublicKeyError(f"unknown key record version v={tags['v']}")
    hashes = tags.get("h")
    if hashes is not None and "sha256" not in hashes.split(":"):  # RFC 8301 §3.1: sha1 is not acceptable
        raise PublicKeyError(f"the key record allows h={hashes} only; sha256 is required")
    key_type = tags.get("k", "rsa")
    if key_type not in KEY_TYPES:
        raise PublicKeyError(f"unsupported key type k={key_type} (rsa or ed25519)")
    if not tags["p"]:
        raise PublicKeyError("the key record has an empty p=: the key is revoked (RFC 6376 §3.6.1)")
    return _from_base64(tags["p"], key_type)


def _from_base64(value: str, key_type: KeyType | None) -> PublicKey:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError("the p= value is not base64") from None
    if key_type == "ed25519" or (key_type is None and len(raw) == ED25519_BYTES):
        if len(raw) != ED25519_BYTES:
            raise PublicKeyError(f"an Ed25519 key is {ED25519_BYTES} bytes (RFC 8463 §4), not {len(raw)}")
        return PublicKey("ed25519", base64.b64encode(raw).decode("ascii"))
    return _rsa(raw)


def _rsa(der: bytes) -> PublicKey:
    """An RSA key from DER SubjectPublicKeyInfo or PKCS#1 RSAPublicKey, as SubjectPublicKeyInfo."""
    key: object
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_der_public_key(_pkcs1_to_spki(der))
        except (ValueError, UnsupportedAlgorithm):
            raise PublicKeyError("the p= value is not an RSA public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey("ed25519", base64.b64encode(raw).decode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise PublicKeyError(f"unsupported public key type {type(key).__name__} (RSA or Ed25519)")
    if key.key_size < MIN_RSA_BITS:
        raise PublicKeyError(f"RSA key of {key.key_size} bits: at least {MIN_RSA_BITS} (RFC 8301 §3.2)")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey("rsa", base64.b64encode(spki).decode("ascii"))


def _pkcs1_to_spki(der: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 3279 §2.3.1) by hand: DER only."""
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")  # rsaEncryption, NULL parameters
    bit_string = b"\x03" + _der_length(len(der) + 1) + b"\x00" + der
    body = algorithm + bit_string
    return b"\x30" + _der_length(len(body)) + body


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _from_pem(kind: str, body: str) -> PublicKey:
    try:
        der = base64.b64decode(re.sub(r"\s+", "", body), validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError(f"the PEM {kind} block is not base64") from None
    if kind in ("PUBLIC KEY", "RSA PUBLIC KEY"):  # SubjectPublicKeyInfo (RSA or Ed25519), PKCS#1
        return _rsa(der)
    if "PRIVATE" in kind:
        raise PublicKeyError("this is a private key: give the public key (or the key record, the .txt file)")
    raise PublicKeyError(f"a PEM {kind} is not a public key (expected BEGIN PUBLIC KEY)")


def parse_public_key(text: str) -> PublicKey:
    """Read a DKIM public key from a PEM key, a (zone-file) key record or a bare ``p=`` value."""
    if len(text) > _MAX_TEXT:
        raise PublicKeyError(f"too long for a public key ({len(text)} characters)")
    pem = _PEM_RE.search(text)
    if pem:
        return _from_pem(pem.group(1).strip(), pem.group(2))
    unquoted = _unquote(text)
    candidate = unquoted if unquoted is not None else text.strip()
    tags = _tags(candidate)
    if tags is not None:
        return _from_record(tags)
    bare = re.sub(r"\s+", "", candidate)
    if not bare or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", bare):
        raise PublicKeyError(_NOT_FOUND)
    try:
        return _from_base64(bare, None)
    except PublicKeyError as exc:
        raise PublicKeyError(f"{_NOT_FOUND}: {exc}") from None
