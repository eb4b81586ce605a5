"""Mail addresses: parsing and normalisation (RFC 5321 §4.1.2 mailbox syntax, IDNA domains).

Domains are compared in their ASCII (A-label) lower-case form, internationalised names
converted by IDNA 2008 (RFC 5891, with the UTS #46 non-transitional mapping: the ``idna``
package; the trust list, the hosted domains and routing all go through here). Local parts keep
their case except for patient addresses, whose INS is upper-cased; a local part may be UTF-8
(RFC 6531 §3.3), kept in NFC (RFC 6532 §3.1).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import idna

from routing.ins import InvalidINS, normalise_ins

# RFC 5321 §4.1.2 Dot-string atoms, with RFC 6531 §3.3's UTF-8 characters (no C1 control, no
# space of any kind, no surrogate nor U+FFFD: bytes that were not UTF-8); quoted local parts
# are refused in the trust space.
_ATOM = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x9f\s\ud800-\udfff\ufffd])+"
_LOCAL_RE = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_LOCAL = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2


class InvalidAddress(ValueError):
    """An address that is not a usable mailbox; the message is safe to show a sender."""


@lru_cache(maxsize=4096)  # pure; the same few domains come back on every message (IDNA costs ~20 µs)
def normalise_domain(domain: str) -> str:
    """Lower-case A-label form of a domain (Unicode names go through IDNA)."""
    text = domain.strip().rstrip(".")
    if not text:
        raise InvalidAddress("empty domain")
    if text.isascii() and "xn--" not in text.lower():
        ascii_form = text.lower()  # LDH names need no IDNA (and keep R-LDH labels they may have)
    else:
        try:
            ascii_form = idna.encode(text, uts46=True, transitional=False).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError, ValueError):
            raise InvalidAddress("invalid domain name") from None
    if len(ascii_form) > MAX_DOMAIN:
        raise InvalidAddress("domain name too long")
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidAddress("invalid domain name")
    return ascii_form


@dataclass(frozen=True, order=True)
class Address:
    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def ascii(self) -> bool:
        """Whether it can travel without SMTPUTF8 (RFC 6531): the domain always can (A-label)."""
        return self.local.isascii()

    @property
    def key(self) -> str:
        """Comparison key: local part case-folded, domain already normalised."""
        return f"{self.local.lower()}@{self.domain}"


def parse_address(text: str) -> Address:
    """Parse ``local@domain`` (optionally in angle brackets) into a normalised :class:`Address`."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if value.count("@") != 1:
        raise InvalidAddress("address must have the form local@domain")
    local, domain = value.split("@")
    if not local.isascii():
        local = unicodedata.normalize("NFC", local)
    if not local or not _LOCAL_RE.match(local) or len(local.encode("utf-8")) > MAX_LOCAL:
        raise InvalidAddress("invalid local part")
    return Address(local, normalise_domain(domain))


def patient_address(ins: str, patient_domain: str) -> Address:
    """SPEC §3: the patient's address is ``<INS>@<patient domain>``."""
    return Address(normalise_ins(ins), normalise_domain(patient_domain))


def patient_ins(address: Address, patient_domain: str) -> str | None:
    """The INS of a patient address, None when the domain is not the patient domain.

    Raises :class:`routing.ins.InvalidINS` when the domain matches but the local part is not a valid INS.
    """
    if address.domain != normalise_domain(patient_domain):
        return None
    return normalise_ins(address.local)


__all__ = [
    "Address",
    "InvalidAddress",
    "InvalidINS",
    "normalise_domain",
    "parse_address",
    "patient_address",
    "patient_ins",
]
