"""The EHLO keywords: what this server advertises, from one place (RFC 5321 §4.1.1.1).

Every extension advertised here is one the session implements. Of those it does not offer:
BDAT (CHUNKING, RFC 3030) is an unknown verb, ``BODY=BINARYMIME`` and unknown parameters
are refused by :mod:`smtp.params`, and non-ASCII bytes anywhere but in the paths of MAIL and
RCPT are refused by the reader, each with its catalogue reply. SMTPUTF8 (RFC 6531): UTF-8
paths with the ``SMTPUTF8`` parameter, UTF-8 headers (RFC 6532) in the message, on every listener.
"""

from __future__ import annotations

from smtp.state import Conditions

BEARER_MECHANISMS = frozenset({"OAUTHBEARER", "XOAUTH2"})
EXTERNAL = "EXTERNAL"


def usable_mechanisms(mechanisms: tuple[str, ...], *, tls: bool, certificate: bool = False) -> tuple[str, ...]:
    """The mechanisms usable now: bearer tokens (RFC 7628 §5) only inside TLS, even where the
    loopback development relaxation lets passwords through in clear; EXTERNAL (RFC 4422
    appendix A) only when the TLS handshake gave a verified client certificate."""
    return tuple(m for m in mechanisms if (tls or m not in BEARER_MECHANISMS)
                 and (m != EXTERNAL or (tls and certificate)))


def ehlo_keywords(conditions: Conditions, *, max_size: int, mechanisms: tuple[str, ...],
                  certificate: bool = False) -> list[str]:
    """The keywords of the EHLO reply for a session in ``conditions`` (EHLO already applied)."""
    keywords = [
        "PIPELINING",  # RFC 2920
        f"SIZE {max_size}",  # RFC 1870
        "8BITMIME",  # RFC 6152
        "ENHANCEDSTATUSCODES",  # RFC 2034: every reply below carries its code (smtp.replies)
        "DSN",  # RFC 3461
        "SMTPUTF8",  # RFC 6531
    ]
    if conditions.starttls_offered and not conditions.tls:
        keywords.append("STARTTLS")  # RFC 3207 §4: not once TLS is on
    # RFC 4954 §4, SPEC §6: AUTH only where the listener takes it, never before TLS
    # (unless the loopback development relaxation is on).
    offered = usable_mechanisms(mechanisms, tls=conditions.tls, certificate=certificate)
    if conditions.auth_offered and conditions.esmtp and conditions.privacy and offered:
        keywords.append("AUTH " + " ".join(offered))
    return keywords
