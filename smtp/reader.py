"""The SMTP command reader, sans-IO: bytes -> lines -> typed commands or catalogue replies.

Two layers (pymap's parse-returns-(value, rest), Stalwart's receiver):

* :class:`LineReader` frames lines: CRLF, or a bare LF (commands are read liberally; the
  DATA reader is the strict one, RFC 5321 §2.3.8 and :mod:`smtp.dataparse`). A line longer
  than the limit it is read with is read on to its end and dropped (:data:`TOO_LONG`),
  never buffered: memory stays bounded by the limit.
* :func:`parse` turns one line into a :class:`~smtp.commands.Command` or a reply: line
  limits per verb (RFC 5321 §4.5.3.1.4: 512 octets with CRLF; MAIL grows by 26 for SIZE,
  RFC 1870 §3, 100 for RET/ENVID, RFC 3461 §4, and 500 for AUTH=, RFC 4954 §5; RCPT by 500
  for NOTIFY/ORCPT, RFC 3461 §4), ASCII only but for the paths of MAIL and RCPT, which may
  be UTF-8 (SMTPUTF8, RFC 6531 §3.3: the session refuses them without the parameter),
  unknown verbs, then each verb's arguments (MAIL/RCPT parameters through
  :mod:`smtp.params`).
"""

from __future__ import annotations

from typing import Final

from smtp import replies
from smtp.commands import Auth, Command, Hello, Invalid, Mail, Rcpt, Simple
from smtp.params import parse_mail_params, parse_rcpt_params
from smtp.replies import Reply
from smtp.state import Verb

COMMAND_LINE: Final = 512  # RFC 5321 §4.5.3.1.4, CRLF included
SASL_LINE: Final = 12288  # RFC 4954 §4: a client response line may be this long
# AUTH with an initial response as long as a SASL line: RFC 4954 §4 tells clients to keep within
# 512, but XOAUTH2 / OAUTHBEARER clients (smtplib, Thunderbird, LPS) send a 1-2 kB access token there.
LINE_LIMITS: Final = {Verb.MAIL: 512 + 26 + 100 + 500, Verb.RCPT: 512 + 500, Verb.AUTH: SASL_LINE}
LONGEST_COMMAND: Final = max(LINE_LIMITS.values())

_VERBS: Final = {verb.value.encode(): verb for verb in Verb}
_NO_ARGUMENT: Final = frozenset({Verb.DATA, Verb.RSET, Verb.QUIT, Verb.STARTTLS})  # RFC 5321 §4.1.1, RFC 3207 §4
_ARGUMENT_REQUIRED: Final = frozenset({Verb.VRFY, Verb.EXPN})  # RFC 5321 §4.1.1.6-7


class TooLong:
    """A line over the limit, read to its end and dropped."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG: Final = TooLong()


class LineReader:
    """Frames input into lines without their line ending; :meth:`next_line` returns None
    until a whole line is there."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False  # inside a line that is already too long

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_line(self, limit: int) -> bytes | TooLong | None:
        """The next line (at most ``limit`` octets with its CRLF), :data:`TOO_LONG`, or None."""
        buf = self._buf
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > limit:  # cannot fit any more: drop it and skip to the line's end
                self._discarding = True
                buf.clear()
            return None
        raw = bytes(buf[: end + 1])
        del buf[: end + 1]
        if self._discarding:
            self._discarding = False
            return TOO_LONG
        line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if len(line) + 2 > limit:
            return TOO_LONG
        return line

    def take_rest(self) -> bytes:
        """Everything buffered, now read as something else (message data, or discarded)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._discarding = False
        return rest


def parse(line: bytes, max_size: int) -> Command | Reply:
    """One command line (without its line ending) -> a command, or the reply refusing it.

    :data:`replies.COMMAND_UNRECOGNIZED` is the one reply the session counts (five close
    the session). ``max_size`` is the listener's message size limit (``SIZE=``, RFC 1870).
    """
    word, _, rest = line.partition(b" ")
    verb = _VERBS.get(word.upper())
    limit = LINE_LIMITS.get(verb, COMMAND_LINE) if verb is not None else COMMAND_LINE
    if len(line) + 2 > limit:
        return replies.LINE_TOO_LONG
    utf8 = not line.isascii()
    if utf8 and verb not in (Verb.MAIL, Verb.RCPT):
        return replies.NON_ASCII_COMMAND
    if verb is None:
        return replies.COMMAND_UNRECOGNIZED
    try:
        argument = rest.strip().decode("utf-8" if utf8 else "ascii")
    except UnicodeDecodeError:
        return replies.INVALID_UTF8
    if verb in (Verb.EHLO, Verb.HELO):
        return Hello(verb, argument) if argument else Invalid(verb, replies.SYNTAX_ERROR)
    if verb is Verb.MAIL:
        return _mail(argument, max_size)
    if verb is Verb.RCPT:
        return _rcpt(argument)
    if verb is Verb.AUTH:
        words = argument.split()
        if not 1 <= len(words) <= 2:
            return Invalid(verb, replies.SYNTAX_ERROR)
        return Auth(words[0].upper(), words[1] if len(words) == 2 else None)
    if (verb in _NO_ARGUMENT and argument) or (verb in _ARGUMENT_REQUIRED and not argument):
        return Invalid(verb, replies.SYNTAX_ERROR)
    return Simple(verb, argument)


def _keyword(argument: str, keyword: str) -> str | None:
    """The text after ``FROM:``/``TO:`` (any case; spaces after the colon tolerated)."""
    if argument[: len(keyword)].upper() != keyword:
        return None
    return argument[len(keyword) :].lstrip()


def split_path(text: str) -> tuple[str, str] | None:
    """``<[A-d-l:]Mailbox> rest`` -> (mailbox, rest) (RFC 5321 §4.1.2 Path); None if malformed.

    ``>`` inside a quoted local part does not end the path; a source route (A-d-l) is
    dropped, as RFC 5321 §3.6.1 and Appendix C ask; ``<>`` gives "".
    """
    if not text.startswith("<"):
        return None
    end = text.find(">")
    if end > 0 and '"' not in text[:end]:  # the usual case, no quoted local part
        return _route_dropped(text[1:end].strip(), text[end + 1 :])
    i, quoted = 1, False
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            break
        i += 1
    else:
        return None
    return _route_dropped(text[1:i].strip(), text[i + 1 :])


def _route_dropped(mailbox: str, rest: str) -> tuple[str, str] | None:
    if mailbox.startswith("@"):  # A-d-l ":" Mailbox
        route_end = mailbox.find(":")
        if route_end < 0:
            return None
        mailbox = mailbox[route_end + 1 :]
    return mailbox, rest


def _mail(argument: str, max_size: int) -> Command:
    after = _keyword(argument, "FROM:")
    path = split_path(after) if after is not None else None
    if path is None:
        return Invalid(Verb.MAIL, replies.MAIL_SYNTAX)
    if not path[1].isascii():  # parameters are ASCII (xtext, RFC 3461 §4; RFC 6531 §3.4)
        return Invalid(Verb.MAIL, replies.NON_ASCII_COMMAND)
    params = parse_mail_params(path[1].split(), max_size)
    if isinstance(params, Reply):
        return Invalid(Verb.MAIL, params)
    return Mail(path[0], params)


def _rcpt(argument: str) -> Command:
    after = _keyword(argument, "TO:")
    path = split_path(after) if after is not None else None
    if path is None or not path[0]:  # RFC 5321 §4.1.1.3: no null forward-path
        return Invalid(Verb.RCPT, replies.RCPT_SYNTAX)
    if not path[1].isascii():
        return Invalid(Verb.RCPT, replies.NON_ASCII_COMMAND)
    params = parse_rcpt_params(path[1].split())
    if isinstance(params, Reply):
        return Invalid(Verb.RCPT, params)
    return Rcpt(path[0], params)
