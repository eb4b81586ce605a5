"""The EHLO keywords: what this server advertises, from one place (RFC 5321 §4.1.1.1).

Every extension advertised here is one the session implements; the ones it does not
(CHUNKING/BINARYMIME, SMTPUTF8, REQUIRETLS) are refused by the command reader and the
parameter parser with their catalogue replies.
"""

from __future__ import annotations

from smtp.state import Conditions


def ehlo_keywords(conditions: Conditions, *, max_size: int, mechanisms: tuple[str, ...]) -> list[str]:
    """The keywords of the EHLO reply for a session in ``conditions`` (EHLO already applied)."""
    keywords = [
        "PIPELINING",  # RFC 2920
        f"SIZE {max_size}",  # RFC 1870
        "8BITMIME",  # RFC 6152
        "ENHANCEDSTATUSCODES",  # RFC 2034: every reply below carries its code (smtp.replies)
        "DSN",  # RFC 3461
    ]
    if conditions.starttls_offered and not conditions.tls:
        keywords.append("STARTTLS")  # RFC 3207 §4: not once TLS is on
    # RFC 4954 §4, SPEC §6: AUTH only where the listener takes it, never before TLS
    # (unless the loopback development relaxation is on).
    if conditions.auth_offered and conditions.esmtp and conditions.privacy and mechanisms:
        keywords.append("AUTH " + " ".join(mechanisms))
    return keywords
