"""The scripted-test file format of Dovecot's imaptest (imapwiki "ImapTest/ScriptedTests").

A file is a header (``key: value`` lines) up to the first empty line, then commands. Both
command forms are read: ``[conn] ok|no|bad|"" command`` (reply status given on the line) and
``[conn] [tagN] command`` followed, after its untagged replies, by ``[tagN] ok [prefix]``
(the reply's start is then matched too); several ``tagN`` commands before their replies are a
pipelined group. ``* reply`` must come, ``! reply`` must not, ``? reply`` may. ``{{{`` opens a
multi-line literal closed by a line starting ``}}}`` (``~{{{``: literal8, bytes kept exactly).

The semantics are those of imaptest's ``release-2.3`` branch (``src/test-parser.c``), the
branch the files come from, including its defaults: state ``selected``, one connection,
**no** messages appended unless ``messages:`` says so, extra untagged replies ignored.
Where that parser has a plain bug without effect on these files (``!ifnenv`` reading the
variable name one byte early; pipelined commands on connection 2+ refused), the documented
meaning is implemented instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path

from tests.imaptest.imapargs import Arg, Kind, ParseError, parse_script_args


class State(IntEnum):
    """Where the connections stand when the test's first command is sent."""

    NONAUTH = 0
    AUTH = 1  # logged in, every test mailbox deleted and unsubscribed
    CREATED = 2  # ... and the test mailbox created
    APPENDED = 3  # ... and the messages appended
    SELECTED = 4  # ... and selected on every connection


class Existence(Enum):
    MUST = "*"
    MUST_NOT = "!"
    MAY = "?"


ALL = -1  # messages: all

REPLY_WORDS = {b"ok": b"ok", b"no": b"no", b"bad": b"bad", b'""': b""}


class ScriptError(Exception):
    pass


@dataclass
class Untagged:
    args: list[Arg]
    existence: Existence
    line: int
    text: str


@dataclass
class Command:
    line: int  # 0: the LOGOUT imaptest adds at the end
    tag: int  # N of "tagN", 0 without
    text: bytes
    reply: list[Arg] | None = None  # the expected tagged reply, from its status word on
    reply_text: str = ""

    @property
    def display(self) -> str:
        text = self.text.decode("utf-8", "backslashreplace")
        head, sep, _ = text.partition("\n")
        return head.rstrip("\r") + (" ..." if sep else "")


@dataclass
class Group:
    connection: int  # 0-based
    commands: list[Command] = field(default_factory=list)
    untagged: list[Untagged] = field(default_factory=list)
    replies_pending: int = 0
    sleep_ms: int = 0
    output: list[bytes] = field(default_factory=list)
    have_untagged_bye: bool = False


@dataclass
class Script:
    name: str
    path: Path
    mbox: Path
    capabilities: list[str] = field(default_factory=list)
    connections: int = 1
    messages: int = 0
    state: State = State.SELECTED
    ignore_extra_untagged: bool = True
    users: dict[int, str] = field(default_factory=dict)  # "user N:" header, 1-based
    require_user2: bool = False
    groups: list[Group] = field(default_factory=list)


def reply_args(word: bytes) -> list[Arg]:
    return [Arg(Kind.ATOM, word)]


def _reply_name(args: list[Arg]) -> bytes:
    """The reply's name: its first atom, or the second after a number or ``$n``."""
    first = args[0].atom() if args else None
    if first is None:
        return b""
    if first[:1] == b"$" or first[:1].isdigit():
        second = args[1].atom() if len(args) > 1 else None
        return second if second is not None else b""
    return first


# --- $!directives and their defaults (test_parse_untagged_handle_directives) -------------

DIRECTIVE = re.compile(rb"\$!(unordered(=\d+)?|ordered|noextra|extra|ignore=.*|ban=.*)\Z", re.S)


@dataclass
class _ListContext:
    parent: _ListContext | None
    reply_name: bytes
    prev_atom: bytes | None = None
    parent_chain_idx: int = 0
    chain_count: int = 1
    directives: bool = False


def _directive(word: str) -> Arg:
    return Arg(Kind.ATOM, word.encode())


def _add_default_directives(ctx: _ListContext, items: list[Arg]) -> None:
    parent = ctx.parent
    if parent is None:
        return
    top_level = parent.parent is None and parent.parent_chain_idx == 0
    if ctx.reply_name in (b"list", b"lsub"):
        if top_level and ctx.parent_chain_idx == 1:  # list|lsub (flags) sep mailbox
            items.insert(0, _directive("$!unordered"))
    elif ctx.reply_name == b"status":
        if top_level and ctx.parent_chain_idx == 2:  # status mailbox (values)
            items.insert(0, _directive("$!unordered=2"))
    elif ctx.reply_name == b"fetch":
        grand = parent.parent
        if top_level and ctx.parent_chain_idx == 2:  # seq fetch (values)
            items.insert(0, _directive("$!unordered=2"))
        elif (grand is not None and grand.parent is None and grand.parent_chain_idx == 0
              and parent.parent_chain_idx == 2 and ctx.prev_atom == b"flags"):  # seq fetch (flags (...))
            for word in ("$!unordered", "$!noextra", "$!ignore=\\recent", "$!ignore=$HasAttachment",
                         "$!ignore=$HasNoAttachment"):
                items.insert(0, _directive(word))


def _handle_directives(ctx: _ListContext, items: list[Arg]) -> None:
    for arg in items:
        word = arg.atom()
        if word is None or not word.startswith(b"$!"):
            break
        if DIRECTIVE.match(word) is None:
            raise ScriptError(f"Unknown directive: {word.decode(errors='replace')}")
        if word.startswith(b"$!unordered="):
            ctx.chain_count = int(word[len(b"$!unordered=") :])
        ctx.directives = True
    if not ctx.directives:
        _add_default_directives(ctx, items)
    prev_atom: bytes | None = None
    for i, arg in enumerate(items):
        word = arg.atom()
        if word is not None:
            prev_atom = word.lower()
        if arg.kind is not Kind.LIST:
            continue
        sub = _ListContext(ctx, ctx.reply_name.lower(), prev_atom,
                           i if ctx.chain_count == 1 else i % ctx.chain_count)
        _handle_directives(sub, arg.items)


def expected_reply(text: bytes) -> list[Arg]:
    """An expected untagged reply (without its ``* ``) as the script parser stores it: parsed,
    with the default ``$!`` directives of its lists added."""
    try:
        args = parse_script_args(text)
    except ParseError as exc:
        raise ScriptError(str(exc)) from None
    _handle_directives(_ListContext(None, _reply_name(args)), args)
    return args


# --- the file ---------------------------------------------------------------------------


def _first_word(line: bytes) -> bytes:
    return line.split(b" ", 1)[0]


def _get_cmd_reply(line: bytes) -> tuple[bytes | None, int, bytes]:
    """An optional ``tagN`` then an optional reply status word: (status, N, rest)."""
    tag = 0
    word = _first_word(line)
    if word[:3].lower() == b"tag" and b" " in line and word[3:].isdigit() and int(word[3:]) > 0:
        tag = int(word[3:])
        line = line.split(b" ", 1)[1]
        word = _first_word(line)
    status = REPLY_WORDS.get(word.lower())
    if status is not None:
        line = line[len(word) :]
        if line[:1] == b" ":
            line = line[1:]
    return status, tag, line


class _Parser:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.group: Group | None = None
        self.ifenv: list[tuple[int, bool, bool]] = []  # (line, skip before, else seen)
        self.skip = False

    def header(self, line: bytes) -> None:
        key_raw, colon, value_raw = line.partition(b":")
        if not colon:
            raise ScriptError("Missing ':'")
        key = key_raw.rstrip(b" ").decode().lower()
        value = value_raw.lstrip(b" ").decode()
        s = self.script
        if key == "capabilities":
            s.capabilities = value.split()
        elif key == "connections":
            s.connections = 2 if value == "n" else int(re.match(r"\d*", value).group() or 0)  # type: ignore[union-attr]
        elif key == "ignore_extra_untagged":
            s.ignore_extra_untagged = value[:1] == "y"
        elif key.startswith("user ") and key[5:].isdigit() and int(key[5:]) > 0:
            if value in ("$user2", "${user2}"):
                s.require_user2 = True
            s.users[int(key[5:])] = value
        elif key == "messages":
            s.messages = ALL if value == "all" else int(re.match(r"\d*", value).group() or 0)  # type: ignore[union-attr]
        elif key == "state":
            try:
                s.state = {"nonauth": State.NONAUTH, "auth": State.AUTH, "created": State.CREATED,
                           "appended": State.APPENDED, "selected": State.SELECTED}[value.lower()]
            except KeyError:
                raise ScriptError("Unknown state value") from None
        else:
            raise ScriptError("Unknown setting")

    def preprocess(self, line: bytes, linenum: int) -> bool:
        """``!ifenv``/``!ifnenv``/``!else``/``!endif``; True when the line was one of them."""
        for word, want in ((b"!ifenv ", True), (b"!ifnenv ", False)):
            if line.startswith(word):
                present = os.environ.get(line[len(word) :].decode()) is not None
                self.ifenv.append((linenum, self.skip, False))
                if present != want:
                    self.skip = True
                return True
        if line == b"!else":
            if not self.ifenv:
                raise ScriptError("!else without !ifenv")
            start, skip_before, seen = self.ifenv[-1]
            if seen:
                raise ScriptError("!else already seen")
            self.ifenv[-1] = (start, skip_before, True)
            if not skip_before:
                self.skip = not self.skip
            return True
        if line == b"!endif":
            if not self.ifenv:
                raise ScriptError("!endif without !ifenv")
            self.skip = self.ifenv.pop()[1]
            return True
        return False

    def untagged(self, line: bytes, linenum: int, existence: Existence) -> None:
        assert self.group is not None
        args = expected_reply(line)
        name = _reply_name(args)
        if name[:3].upper() == b"BYE":
            if existence is Existence.MUST:
                self.group.have_untagged_bye = True
            elif existence is Existence.MAY:
                raise ScriptError("? BYE not currently supported")
        text = line.decode("utf-8", "backslashreplace")
        self.group.untagged.append(Untagged(args, existence, linenum, f"{existence.value} {text}"))

    def finish_reply(self, line: bytes, tag: int) -> None:
        assert self.group is not None
        command = next((c for c in self.group.commands if c.tag == tag), None)
        if command is None:
            raise ScriptError("Reply for unknown tag")
        if command.reply is not None:
            raise ScriptError("Command already has a reply")
        try:
            args = parse_script_args(line)
        except ParseError as exc:
            raise ScriptError(str(exc)) from None
        command.reply = args[1:] if tag else args
        command.reply_text = line.decode("utf-8", "backslashreplace")
        self.group.replies_pending -= 1

    def command_line(self, line: bytes, linenum: int) -> None:
        if self.preprocess(line, linenum) or self.skip:
            return
        group = self.group
        if group is not None:
            if line.startswith(b"!sleep "):
                group.sleep_ms = _msecs(line[7:].decode())
                return
            if line.startswith(b"!output "):
                group.output.append(line[8:])
                return
            marker = line[:2]
            for existence in Existence:
                if marker == existence.value.encode() + b" ":
                    self.untagged(line[2:], linenum, existence)
                    return
            if group.replies_pending > 0:
                status, tag, _ = _get_cmd_reply(line)
                if status is not None:
                    self.finish_reply(line, tag)
                    return
        elif line[:2] in (b"* ", b"! ", b"? "):
            raise ScriptError("untagged reply before any command")
        if group is None or group.replies_pending == 0:
            group = Group(connection=0)
            self.group = group
            self.script.groups.append(group)
        if self.script.connections > 1:
            word = _first_word(line)
            if not word.isdigit() or int(word) == 0:
                raise ScriptError("Missing client index")
            index = int(word) - 1
            if group.commands and group.connection != index:
                raise ScriptError("All pipelined commands must use the same connection")
            group.connection = index
            self.script.connections = max(self.script.connections, index + 1)
            line = line.split(b" ", 1)[1] if b" " in line else b""
        status, tag, line = _get_cmd_reply(line)
        if tag == 0:
            if group.replies_pending > 0:
                raise ScriptError("Missing reply from previous command group")
        elif any(c.tag == tag for c in group.commands):
            raise ScriptError("Tag reused within command group")
        command = Command(linenum, tag, line)
        if status is None:
            group.replies_pending += 1
        else:
            command.reply = reply_args(status)
            command.reply_text = (status or b'""').decode()
        group.commands.append(command)


def _msecs(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*(ms|msecs?|s|secs?)?\s*", text)
    if match is None:
        raise ScriptError(f"Invalid !sleep value {text}")
    value = int(match.group(1))
    return value if (match.group(2) or "s").startswith("m") else value * 1000


def parse_script(path: Path, default_mbox: Path | None = None) -> Script:
    """Read one test file; raises :class:`ScriptError` with the line number on bad input."""
    mbox = path.with_name(path.name + ".mbox")
    script = Script(path.name, path, mbox if mbox.exists() else (default_mbox or path.with_name("default.mbox")))
    parser = _Parser(script)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        raise ScriptError(f"{path}: Last line doesn't end with LF")
    lines = data.split(b"\n")[:-1] if data else []
    header = True
    multiline: bytearray | None = None
    start_pos = last_line_end = start_linenum = 0
    binary = False
    for linenum, line in enumerate(lines, 1):
        try:
            if multiline is not None:
                if not line.startswith(b"}}}"):
                    multiline += line
                    last_line_end = len(multiline)
                    # the line keeps its CR if the file has one: literal8 bytes stay exact, a
                    # plain literal gets CRLF (imaptest never sees i_stream_last_line_crlf set)
                    multiline += b"\n" if binary else b"\r\n"
                    continue
                del multiline[last_line_end:]
                size = len(multiline) - start_pos
                multiline[start_pos:start_pos] = (b"~" if binary else b"") + b"{%d}\r\n" % size
                rest = line[3:]
                if rest.endswith(b"{{{"):
                    binary = rest.endswith(b"~{{{")
                    multiline += rest[: -4 if binary else -3]
                    start_pos = last_line_end = len(multiline)
                    continue
                multiline += rest
                line, multiline = bytes(multiline), None
            else:
                start_linenum = linenum
                if not line:
                    header = False
                    continue
                if line.startswith(b"#"):
                    continue
                if line.endswith(b"{{{"):
                    binary = line.endswith(b"~{{{")
                    multiline = bytearray(line[: -4 if binary else -3])
                    start_pos = last_line_end = len(multiline)
                    continue
            if header:
                parser.header(line)
            else:
                parser.command_line(line, start_linenum)
        except (ScriptError, ValueError) as exc:
            raise ScriptError(f"{path.name} line {linenum}: {exc}") from None
    if multiline is not None:
        raise ScriptError(f"{path.name}: Multiline reply at line {start_linenum} not ended")
    if parser.group is None:
        raise ScriptError(f"{path.name}: No commands in file")
    if parser.group.replies_pending > 0:
        missing = next(c for c in parser.group.commands if c.reply is None)
        raise ScriptError(f"{path.name}: Missing reply from previous command at line {missing.line}")
    if parser.ifenv:
        raise ScriptError(f"{path.name}: !ifenv at line {parser.ifenv[0][0]} not closed with !endif")
    _add_logout(script)
    return script


def _add_logout(script: Script) -> None:
    """imaptest ends every test with LOGOUT on the first connection unless it logs out itself."""
    for group in script.groups:
        if group.have_untagged_bye or any(c.text.lower() == b"logout" for c in group.commands):
            return
    script.groups.append(Group(0, [Command(0, 0, b"logout", reply_args(b"ok"), "ok")]))


def list_tests(folder: Path) -> list[str]:
    """The tests of a folder, as imaptest lists them: files, sorted, without the ``.mbox`` ones."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".mbox"))
