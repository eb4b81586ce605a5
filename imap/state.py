"""THE IMAP state machine: one table of commands × states (h11 ``_state.py`` style), and
what each state advertises.

RFC 3501 §3 states; §6.1-6.4 say where each command is valid; extensions add theirs
(RFC 2177 IDLE, RFC 5465 NOTIFY, RFC 5161 ENABLE, RFC 2342 NAMESPACE, RFC 2971 ID,
RFC 3691 UNSELECT, RFC 4315 UID EXPUNGE, RFC 6851 MOVE, RFC 5267 CANCELUPDATE, RFC 4978 COMPRESS,
RFC 9208 QUOTA). Anything not in the table is a protocol error.

The CAPABILITY list depends on the state and TLS (RFC 3501 §6.1.1, §7.2.1): before login
only what a client needs to log in is shown; extensions are listed after authentication
(clients re-ask or read the ``[CAPABILITY ...]`` code of the tagged OK).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from imap.proto import replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.receiver import DEFAULT_APPENDLIMIT, LiteralMode


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class Tls(enum.Enum):
    ANY = "any"
    REQUIRED_FOR_LOGIN = "login"  # refused before TLS when the listener requires it (LOGINDISABLED)
    REFUSED_WITH_TLS = "no-tls"  # STARTTLS once TLS is on (RFC 3501 §6.2.1)


@dataclass(frozen=True, slots=True)
class Rule:
    states: frozenset[State]
    tls: Tls = Tls.ANY
    on_success: State | None = None  # state after a tagged OK (None: unchanged)
    on_failure: State | None = None  # state after a tagged NO (None: unchanged)


_N, _A, _S = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
_ANY = frozenset({_N, _A, _S})
_NONAUTH = frozenset({_N})
_AUTH = frozenset({_A, _S})
_SELECTED = frozenset({_S})

#: command name → rule. The single source of truth for "is this command valid now?".
TABLE: dict[str, Rule] = {
    # RFC 3501 §6.1: any state
    "CAPABILITY": Rule(_ANY),
    "NOOP": Rule(_ANY),
    "LOGOUT": Rule(_ANY, on_success=State.LOGOUT),
    "ID": Rule(_ANY),  # RFC 2971 §3.1
    # RFC 3501 §6.2: not authenticated
    "STARTTLS": Rule(_NONAUTH, Tls.REFUSED_WITH_TLS),
    "AUTHENTICATE": Rule(_NONAUTH, Tls.REQUIRED_FOR_LOGIN, on_success=_A),
    "LOGIN": Rule(_NONAUTH, Tls.REQUIRED_FOR_LOGIN, on_success=_A),
    # RFC 3501 §6.3: authenticated (and selected); a failed SELECT/EXAMINE deselects (§6.3.1)
    "SELECT": Rule(_AUTH, on_success=_S, on_failure=_A),
    "EXAMINE": Rule(_AUTH, on_success=_S, on_failure=_A),
    "CREATE": Rule(_AUTH),
    "DELETE": Rule(_AUTH),
    "RENAME": Rule(_AUTH),
    "SUBSCRIBE": Rule(_AUTH),
    "UNSUBSCRIBE": Rule(_AUTH),
    "LIST": Rule(_AUTH),
    "LSUB": Rule(_AUTH),
    "STATUS": Rule(_AUTH),
    "APPEND": Rule(_AUTH),
    "NAMESPACE": Rule(_AUTH),  # RFC 2342 §5
    "IDLE": Rule(_AUTH),  # RFC 2177 §3
    "NOTIFY": Rule(_AUTH),  # RFC 5465 §3
    "ENABLE": Rule(frozenset({_A})),  # RFC 5161 §3.1: only before a mailbox is selected
    "COMPRESS": Rule(_AUTH),  # RFC 4978 §3: once authenticated
    "GETQUOTA": Rule(_AUTH),  # RFC 9208 §4.1.1
    "GETQUOTAROOT": Rule(_AUTH),  # RFC 9208 §4.1.2
    "SETQUOTA": Rule(_AUTH),  # RFC 9208 §4.1.3 (refused: admins set quotas)
    # RFC 3501 §6.4: selected
    "CHECK": Rule(_SELECTED),
    "CLOSE": Rule(_SELECTED, on_success=_A),
    "UNSELECT": Rule(_SELECTED, on_success=_A),  # RFC 3691
    "EXPUNGE": Rule(_SELECTED),
    "SEARCH": Rule(_SELECTED),
    "SORT": Rule(_SELECTED),  # RFC 5256 §3
    "THREAD": Rule(_SELECTED),  # RFC 5256 §3
    "FETCH": Rule(_SELECTED),
    "STORE": Rule(_SELECTED),
    "COPY": Rule(_SELECTED),
    "MOVE": Rule(_SELECTED),  # RFC 6851
    "UID EXPUNGE": Rule(_SELECTED),  # RFC 4315 §2.1
    "UID SEARCH": Rule(_SELECTED),
    "UID SORT": Rule(_SELECTED),
    "UID THREAD": Rule(_SELECTED),
    "CANCELUPDATE": Rule(_SELECTED),  # RFC 5267 §4.3
    "UID FETCH": Rule(_SELECTED),
    "UID STORE": Rule(_SELECTED),
    "UID COPY": Rule(_SELECTED),
    "UID MOVE": Rule(_SELECTED),
}


def check(state: State, command_name: str, *, tls: bool, login_requires_tls: bool) -> None:
    """Raise the response for ``command_name`` not being allowed now; return if allowed."""
    rule = TABLE.get(command_name)
    if rule is None:
        raise BadCommand(replies.UNKNOWN_COMMAND)
    if state not in rule.states:
        raise BadCommand(replies.NOT_VALID_IN_STATE, detail=f"{command_name} in {state.value}")
    if rule.tls is Tls.REFUSED_WITH_TLS and tls:
        raise BadCommand(replies.TLS_ACTIVE)
    if rule.tls is Tls.REQUIRED_FOR_LOGIN and login_requires_tls and not tls:
        # RFC 3501 §6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED
        raise CommandFailed(replies.LOGIN_DISABLED)


def next_state(state: State, command_name: str, *, ok: bool) -> State:
    """State after the tagged response of ``command_name`` (OK when ``ok``, else NO)."""
    rule = TABLE[command_name]
    target = rule.on_success if ok else rule.on_failure
    return state if target is None else target


# --- CAPABILITY by state (RFC 3501 §6.1.1, §7.2.1) -------------------------------------
#: Extensions offered once authenticated (RFC numbers for reference).
AUTHENTICATED_EXTENSIONS: tuple[str, ...] = (
    "IDLE",  # RFC 2177
    "NAMESPACE",  # RFC 2342
    "UIDPLUS",  # RFC 4315
    "MULTIAPPEND",  # RFC 3502
    "CATENATE",  # RFC 4469
    "BINARY",  # RFC 3516
    "ESEARCH",  # RFC 4731
    "SEARCHRES",  # RFC 5182
    "CONTEXT=SEARCH",  # RFC 5267 §4 (UPDATE, PARTIAL, CANCELUPDATE)
    "SORT",  # RFC 5256
    "SORT=DISPLAY",  # RFC 5957
    "ESORT",  # RFC 5267 §3.2
    "THREAD=ORDEREDSUBJECT",  # RFC 5256
    "THREAD=REFERENCES",  # RFC 5256
    "LIST-EXTENDED",  # RFC 5258
    "ENABLE",  # RFC 5161
    "UNSELECT",  # RFC 3691
    "CHILDREN",  # RFC 3348
    "MOVE",  # RFC 6851
    "SPECIAL-USE",  # RFC 6154
    "CONDSTORE",  # RFC 7162
    "QRESYNC",  # RFC 7162 §3.2
    "NOTIFY",  # RFC 5465
    "COMPRESS=DEFLATE",  # RFC 4978
    "LIST-STATUS",  # RFC 5819
    "STATUS=SIZE",  # RFC 8438
    "WITHIN",  # RFC 5032
    "OBJECTID",  # RFC 8474
    "SAVEDATE",  # RFC 8514
    "PREVIEW",  # RFC 8970
    "UTF8=ACCEPT",  # RFC 6855
    # RFC 9208 §3.2, §5: per-mailbox limits set by admins (no QUOTASET: SETQUOTA is refused),
    # STATUS DELETED / DELETED-STORAGE (§4.2) with them.
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
)


PASSWORD_MECHANISMS = frozenset({"PLAIN", "LOGIN"})  # SASL mechanisms that carry a password


def capabilities(
    state: State,
    *,
    tls: bool,
    login_requires_tls: bool = True,
    starttls_available: bool = True,
    literal_mode: LiteralMode = LiteralMode.PLUS,
    appendlimit: int = DEFAULT_APPENDLIMIT,
    auth_mechanisms: Sequence[str] = ("PLAIN",),
    password_login: bool = True,
    token_mechanisms: Sequence[str] = (),
    external: bool = False,
) -> tuple[str, ...]:
    caps: list[str] = ["IMAP4rev1"]
    if literal_mode is not LiteralMode.NONE:
        # RFC 9051 Appendix A: IMAP4rev2 beside IMAP4rev1, switched on by ENABLE; it needs
        # LITERAL- (LITERAL+ includes it), so a listener without either offers rev1 only.
        caps += ["IMAP4rev2", literal_mode.value]  # RFC 7888
    caps += ["SASL-IR", "ID"]  # RFC 4959, RFC 2971
    if state is State.NOT_AUTHENTICATED:
        if not tls and starttls_available:
            caps.append("STARTTLS")
        if not tls and login_requires_tls:
            caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3; no AUTH= either
        else:
            if not password_login:  # the deployment takes no password: LOGIN and PLAIN are refused
                caps.append("LOGINDISABLED")
            caps += [f"AUTH={m.upper()}" for m in auth_mechanisms
                     if password_login or m.upper() not in PASSWORD_MECHANISMS]
            if tls:  # bearer tokens only inside TLS (RFC 7628 §3, §5), whatever the listener allows
                caps += [f"AUTH={m}" for m in token_mechanisms]
            if tls and external:  # RFC 4422 appendix A: a verified client certificate was presented
                caps.append("AUTH=EXTERNAL")
        return tuple(caps)
    caps += AUTHENTICATED_EXTENSIONS
    caps.append(f"APPENDLIMIT={appendlimit}")  # RFC 7889 §3
    return tuple(caps)


def capability_line(caps: Sequence[str]) -> bytes:
    """``* CAPABILITY ...`` CRLF."""
    return ("* CAPABILITY " + " ".join(caps) + "\r\n").encode("ascii")
