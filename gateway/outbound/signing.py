"""DKIM-signing what leaves the gateway (SPEC §7, issue 17).

Every message the outbound worker hands to another server is signed with the key of its
author's domain, the From: domain (RFC 6376 §5.4 and RFC 7489 §3.1.1: the signature a
receiver aligns on), whatever its kind: a professional's message from a hosted domain, a
patient's reply or read receipt from the patient domain, a DSN or a notification from the
gateway's host name. The gateway never signs for a domain that is not its own; the patient
domain and the host name get their key on first use (:mod:`gateway.accounts.signing_keys`).

Signing used to follow the envelope sender, so the null reverse-path of DSNs and MDNs
(RFC 3461 §6.2, RFC 8098 §2.1) left them unsigned, and an operator enforcing DKIM refused them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses

from sqlalchemy.exc import IntegrityError

from crypto.dkim import sign_message
from gateway.accounts.signing_keys import SigningKey, ensure_key, signing_key
from gateway.store.db import Database
from gateway.store.keys import KeyService
from routing.address import InvalidAddress, normalise_domain

log = logging.getLogger("gateway.outbound.signing")


def author_domain(message: bytes) -> str | None:
    """The domain (A-label) of the single From: mailbox (RFC 5322 §3.6.2), else None.

    Header fields may be UTF-8 (RFC 6532); an internationalised domain comes back as its
    A-label (IDNA 2008), the form the DKIM ``d=`` tag carries (RFC 6376 §3.5)."""
    end = message.find(b"\r\n\r\n")
    section = message if end < 0 else message[:end + 2]
    headers = HeaderParser(policy=compat32).parsestr(section.decode("utf-8", "replace"), headersonly=True)
    values = headers.get_all("From") or []
    if len(values) != 1:
        return None
    mailboxes = [addr for _name, addr in getaddresses([str(values[0])]) if addr]
    if len(mailboxes) != 1 or "@" not in mailboxes[0]:
        return None
    try:
        return normalise_domain(mailboxes[0].rpartition("@")[2])
    except InvalidAddress:
        return None


def _key(db: Database, keys: KeyService, domain: str, own_domains: Collection[str]) -> SigningKey | None:
    with db.read() as s:
        found = signing_key(s, keys, domain)
    if found is not None or domain not in own_domains:
        return found
    try:
        with db.write() as s:
            ensure_key(s, keys, domain)
        log.warning("DKIM key created; publish it (gateway domain hosted dkim)", extra={"domain": domain})
    except IntegrityError:
        pass  # another node made it at the same moment: use theirs
    with db.read() as s:
        return signing_key(s, keys, domain)


def sign_outgoing(db: Database, keys: KeyService, message: bytes, *, own_domains: Collection[str]) -> bytes:
    """``message`` with a DKIM-Signature of its From: domain prepended, when that domain is ours
    (hosted, or one of ``own_domains``: the patient domain and the host name, keyed on first use)."""
    domain = author_domain(message)
    if domain is None:
        log.warning("outgoing message not DKIM-signed: no single From: address")
        return message
    key = _key(db, keys, domain, own_domains)
    if key is None or key.private_pem is None:
        return message  # not one of ours: never sign for another domain
    header = sign_message(message, domain=key.domain, selector=key.selector, private_key_pem=key.private_pem)
    return header + message
