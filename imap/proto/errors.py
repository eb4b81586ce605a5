"""IMAP errors that know their response (DESIGN rule 5, pymap ``ResponseError``).

Every error carries a *wire text* that is safe to send to the client and, separately,
an optional ``detail`` for the log. ``response(tag)`` never includes ``str(exc)`` or any
Python exception text: the shell catches :class:`ImapError` in one place, writes
``exc.response(tag)`` and logs ``exc.detail``.
"""

from __future__ import annotations

from imap.proto.replies import Code, Reply, Status, clean

__all__ = ["BadCommand", "Bye", "Code", "CommandFailed", "ImapError", "ProtocolLimit"]


class ImapError(Exception):
    """Base class: a tagged (or untagged) response the client will receive.

    Made from a catalogue entry (:mod:`imap.proto.replies`), whose status must be the
    class's (``NO`` or ``BAD``, RFC 3501 §7.1; ``BYE``); ``code_arg`` is the data of its
    response code (e.g. ``BADCHARSET (UTF-8)``). A plain ``text`` with a ``code`` is
    accepted for refusals a backend makes on its own; ``imap`` itself uses the catalogue
    (a test checks). ``detail`` is for the log only.
    """

    status = "NO"
    #: RFC 5182 §2.1: the failing command is a SEARCH that asked to SAVE: ``$`` becomes empty.
    clears_search_result = False

    def __init__(
        self,
        reply: Reply | str,
        *,
        code: Code | None = None,
        code_arg: str | None = None,
        detail: str | None = None,
        tag: str | None = None,
        close_connection: bool = False,
    ) -> None:
        if isinstance(reply, Reply):
            if reply.status.value != self.status or code is not None:
                raise ValueError(f"{type(self).__name__} cannot carry {reply}")
            reply = reply.with_arg(code_arg) if code_arg is not None else reply
        else:
            reply = Reply(Status(self.status), clean(reply), code, code_arg)
        self.reply = reply
        self.text = reply.text
        self.code = reply.code
        self.code_arg = reply.code_arg
        self.detail = detail
        self.tag = tag
        self.close_connection = close_connection
        super().__init__(detail or self.text)

    def response_text(self) -> str:
        return self.reply.response_text()

    def response(self, tag: str | None = None) -> bytes:
        """The tagged response line (``*`` when no tag is known), CRLF-terminated."""
        return self.reply.line(tag if tag is not None else self.tag)

    def with_tag(self, tag: str | None) -> ImapError:
        """Return ``self`` after recording ``tag`` when the error was raised without one."""
        if self.tag is None:
            self.tag = tag
        return self


class BadCommand(ImapError):
    """Syntax error or command not valid in this state: tagged BAD (RFC 3501 §7.1.5)."""

    status = "BAD"


class CommandFailed(ImapError):
    """Well-formed command that could not be carried out: tagged NO (RFC 3501 §7.1.2)."""

    status = "NO"


class ProtocolLimit(BadCommand):
    """A framing limit was hit: line too long, literal too large, command too big.

    ``close_connection`` is set when the receiver cannot resynchronise with the client
    (e.g. a non-synchronizing literal the client is already sending): the shell then sends
    this response, a ``* BYE`` and closes.
    """


class Bye(ImapError):
    """Untagged ``* BYE`` after which the server closes the connection (RFC 3501 §7.1.5)."""

    status = "BYE"

    def __init__(self, reply: Reply, *, detail: str | None = None) -> None:
        super().__init__(reply, detail=detail, close_connection=True)

    def response(self, tag: str | None = None) -> bytes:
        """Always untagged, whatever ``tag`` is."""
        return self.reply.line()
