"""IMAP errors that know their response (DESIGN rule 5, pymap ``ResponseError``).

Every error carries a *wire text* that is safe to send to the client and, separately,
an optional ``detail`` for the log. ``response(tag)`` never includes ``str(exc)`` or any
Python exception text: the shell catches :class:`ImapError` in one place, writes
``exc.response(tag)`` and logs ``exc.detail``.
"""

from __future__ import annotations

import enum


class Code(enum.StrEnum):
    """Response codes used by the server.

    RFC 3501 §7.1 (ALERT, BADCHARSET, PARSE, TRYCREATE, READ-ONLY, ...),
    RFC 5530 (CANNOT, NONEXISTENT, LIMIT, AUTHENTICATIONFAILED, UNAVAILABLE, SERVERBUG,
    CLIENTBUG, ALREADYEXISTS, INUSE, OVERQUOTA, PRIVACYREQUIRED, CONTACTADMIN, EXPUNGEISSUED),
    RFC 7889 / RFC 4469 (TOOBIG).
    """

    ALERT = "ALERT"
    BADCHARSET = "BADCHARSET"
    PARSE = "PARSE"
    TRYCREATE = "TRYCREATE"
    READ_ONLY = "READ-ONLY"
    TOOBIG = "TOOBIG"
    CANNOT = "CANNOT"
    NONEXISTENT = "NONEXISTENT"
    ALREADYEXISTS = "ALREADYEXISTS"
    LIMIT = "LIMIT"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    UNAVAILABLE = "UNAVAILABLE"
    SERVERBUG = "SERVERBUG"
    CLIENTBUG = "CLIENTBUG"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    INUSE = "INUSE"
    OVERQUOTA = "OVERQUOTA"
    EXPUNGEISSUED = "EXPUNGEISSUED"
    MODIFIED = "MODIFIED"  # RFC 7162 §3.1.3, normally carries a sequence set argument


def _clean(text: str) -> str:
    """Make ``text`` safe for a response line: printable ASCII only, no CR/LF (RFC 3501 §9 text)."""
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    return cleaned.strip() or "Error"


class ImapError(Exception):
    """Base class: a tagged (or untagged) response the client will receive.

    ``status`` is ``NO`` or ``BAD`` (RFC 3501 §7.1). ``code`` is an optional response code,
    ``code_arg`` its argument (e.g. ``BADCHARSET (UTF-8)``). ``text`` is the human-readable
    part sent to the client. ``detail`` is for the log only.
    """

    status = "NO"
    default_text = "Command failed"

    def __init__(
        self,
        text: str | None = None,
        *,
        code: Code | None = None,
        code_arg: str | None = None,
        detail: str | None = None,
        tag: str | None = None,
        close_connection: bool = False,
    ) -> None:
        self.text = _clean(text) if text else self.default_text
        self.code = code
        self.code_arg = code_arg
        self.detail = detail
        self.tag = tag
        self.close_connection = close_connection
        super().__init__(detail or self.text)

    def response_text(self) -> str:
        code = ""
        if self.code is not None:
            code = f"[{self.code.value}{' ' + _clean(self.code_arg) if self.code_arg else ''}] "
        return f"{self.status} {code}{self.text}"

    def response(self, tag: str | None = None) -> bytes:
        """The tagged response line (``*`` when no tag is known), CRLF-terminated."""
        use = tag if tag is not None else (self.tag if self.tag is not None else "*")
        return f"{use} {self.response_text()}\r\n".encode("ascii")

    def with_tag(self, tag: str | None) -> ImapError:
        """Return ``self`` after recording ``tag`` when the error was raised without one."""
        if self.tag is None:
            self.tag = tag
        return self


class BadCommand(ImapError):
    """Syntax error or command not valid in this state: tagged BAD (RFC 3501 §7.1.5)."""

    status = "BAD"
    default_text = "Invalid command"


class CommandFailed(ImapError):
    """Well-formed command that could not be carried out: tagged NO (RFC 3501 §7.1.2)."""

    status = "NO"
    default_text = "Command failed"


class ProtocolLimit(BadCommand):
    """A framing limit was hit: line too long, literal too large, command too big.

    ``close_connection`` is set when the receiver cannot resynchronise with the client
    (e.g. a non-synchronizing literal the client is already sending): the shell then sends
    this response, a ``* BYE`` and closes.
    """

    default_text = "Command too large"

    def __init__(
        self,
        text: str | None = None,
        *,
        code: Code | None = Code.TOOBIG,
        code_arg: str | None = None,
        detail: str | None = None,
        tag: str | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(text, code=code, code_arg=code_arg, detail=detail, tag=tag, close_connection=close_connection)


class Bye(ImapError):
    """Untagged ``* BYE`` after which the server closes the connection (RFC 3501 §7.1.5)."""

    status = "BYE"
    default_text = "Closing connection"

    def __init__(self, text: str | None = None, *, code: Code | None = None, detail: str | None = None) -> None:
        super().__init__(text, code=code, detail=detail, close_connection=True)

    def response(self, tag: str | None = None) -> bytes:
        """Always untagged, whatever ``tag`` is."""
        return f"* {self.response_text()}\r\n".encode("ascii")
