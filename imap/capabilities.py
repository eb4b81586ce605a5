"""The CAPABILITY list by state and TLS (RFC 3501 §6.1.1, §7.2.1).

Before login only what a client needs to log in is shown; extensions are listed after
authentication (clients re-ask or read the ``[CAPABILITY ...]`` code of the tagged OK).
"""

from __future__ import annotations

from collections.abc import Sequence

from imap.proto.receiver import DEFAULT_APPENDLIMIT, LiteralMode
from imap.state import State

#: Extensions offered once authenticated (RFC numbers for reference).
AUTHENTICATED_EXTENSIONS: tuple[str, ...] = (
    "IDLE",  # RFC 2177
    "NAMESPACE",  # RFC 2342
    "UIDPLUS",  # RFC 4315
    "ENABLE",  # RFC 5161
    "UNSELECT",  # RFC 3691
    "CHILDREN",  # RFC 3348
    "MOVE",  # RFC 6851
    "SPECIAL-USE",  # RFC 6154
    "CONDSTORE",  # RFC 7162
)


def capabilities(
    state: State,
    *,
    tls: bool,
    login_requires_tls: bool = True,
    starttls_available: bool = True,
    literal_mode: LiteralMode = LiteralMode.PLUS,
    appendlimit: int = DEFAULT_APPENDLIMIT,
    auth_mechanisms: Sequence[str] = ("PLAIN",),
) -> tuple[str, ...]:
    caps: list[str] = ["IMAP4rev1"]
    if literal_mode is not LiteralMode.NONE:
        caps.append(literal_mode.value)  # RFC 7888
    caps += ["SASL-IR", "ID"]  # RFC 4959, RFC 2971
    if state is State.NOT_AUTHENTICATED:
        if not tls and starttls_available:
            caps.append("STARTTLS")
        if not tls and login_requires_tls:
            caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3; no AUTH= either
        else:
            caps += [f"AUTH={m.upper()}" for m in auth_mechanisms]
        return tuple(caps)
    caps += AUTHENTICATED_EXTENSIONS
    caps.append(f"APPENDLIMIT={appendlimit}")  # RFC 7889 §3
    return tuple(caps)


def capability_line(caps: Sequence[str]) -> bytes:
    """``* CAPABILITY ...`` CRLF."""
    return ("* CAPABILITY " + " ".join(caps) + "\r\n").encode("ascii")
