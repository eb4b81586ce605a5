"""Our runner of imaptest's scripted tests against a live IMAP server (issue 18).

It does what ``imaptest test=DIR`` does (``test-exec.c`` on the ``release-2.3`` branch), test
by test: open the connections, log in, delete every ``imaptest*`` mailbox and subscription,
create ``imaptest``, append the test's messages (its own ``.mbox`` or ``default.mbox``) and
select it, as far as the test's ``state:`` asks; skip the test when the server lacks one of
its ``capabilities:``; then run each command group on its connection (pipelined groups at
once), match the untagged replies in any order and the tagged reply's start, and end with
LOGOUT. A test passes when no group failed; each test has a time limit.

By hand: ``.venv/bin/python -m tests.imaptest.runner --port 143 --user U --password P`` (or
``--dovecot`` for a private Dovecot, see ``tests/imaptest/dovecot.py``).
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from tests.imaptest.connection import Connection, Login, ProtocolError, Response, Timeout
from tests.imaptest.imapargs import Arg, Kind, ParseError, parse_script_args
from tests.imaptest.matcher import FULL, Matcher, Uninitialized
from tests.imaptest.mbox import MboxSource
from tests.imaptest.script import ALL, Command, Existence, Group, Script, ScriptError, State, list_tests, parse_script

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: The data folder, as the design names it: ``../shared/imaptest/tests`` from the repository.
TESTS_DIR = (REPO / ".." / "shared" / "imaptest" / "tests").resolve()


@dataclass(frozen=True)
class Account:
    user: str
    password: str


@dataclass
class Target:
    """The server under test and how each test gets its account."""

    host: str
    port: int
    account_for: Callable[[str], Account]  # test name -> the account it runs on
    user2: Account | None = None  # for "user 2: $user2" (none: such tests are skipped)
    mailbox: str = "imaptest"
    timeout: float = 30.0  # per test
    prepare: Callable[[Target, Account], None] | None = None  # before each test (e.g. empty it)
    literal_plus: bool = True  # False: never {n+}, wait for "+" (imaptest needs LITERAL+; we need not)


class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    TIMEOUT = "TIMEOUT"


@dataclass
class Failure:
    where: str  # "command 3/12 (line 25, connection 2): 2 ok noop" or "initialization"
    reason: str
    expected: str = ""
    got: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [self.where, self.reason]
        if self.expected:
            out.append(f"expected: {self.expected}")
        out += [f"got: {g}" if i == 0 else f"     {g}" for i, g in enumerate(self.got)]
        return out


@dataclass
class Result:
    name: str
    status: Status
    seconds: float
    reason: str = ""  # SKIP: what is missing; TIMEOUT: where it stopped
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    groups_done: int = 0  # command groups finished (imaptest's "individual commands")
    extension: bool = False  # the test needs capabilities (imaptest counts it under "extensions")

    def report(self) -> str:
        head = f"{self.status.value:<8} {self.name} ({self.seconds:.2f} s)"
        body: list[str] = []
        if self.reason:
            body.append(self.reason)
        if self.failures:
            body += self.failures[0].lines()
            if len(self.failures) > 1:
                body.append(f"(and {len(self.failures) - 1} more failure(s) later in the test)")
        return "\n".join([head, *("         " + line for line in body)])


class _Skip(Exception):
    pass


class _Stop(Exception):
    pass


class _Dropped(Exception):
    """imaptest dropped the connection (a BAD it did not expect): the group still finishes,
    the next one fails with "Unexpected disconnection"."""


_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _global_id() -> int:
    with _ids_lock:
        return next(_ids)


def quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def mutf7_decode(name: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) to text: ``&`` base64 of UTF-16BE ``-``, ``&-`` is ``&``."""
    out, i = [], 0
    while i < len(name):
        if name[i] != "&":
            out.append(name[i])
            i += 1
            continue
        end = name.index("-", i)
        chunk = name[i + 1 : end]
        if chunk:
            raw = base64.b64decode(chunk.replace(",", "/") + "=" * (-len(chunk) % 4))
            out.append(raw.decode("utf-16-be"))
        else:
            out.append("&")
        i = end + 1
    return "".join(out)


def mailbox_url(name: str) -> str:
    """``mailbox_mutf7_to_url``: the name as an IMAP URL path segment (``;`` escaped too)."""
    return urllib.parse.quote(mutf7_decode(name), safe="!$&'()*+,=:@/")


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _expects_bad(reply: list[Arg] | None) -> bool:
    word = reply[0].atom() if reply else None
    return word is not None and word.lower() == b"bad"


def _is_any(reply: list[Arg] | None) -> bool:
    return reply is not None and len(reply) == 1 and reply[0].kind is Kind.ATOM and reply[0].data == b""


def _append_has_body(rest: bytes) -> bool:
    """``append_has_body``: ``mailbox [(flags)] ["date"]`` followed by a literal or CATENATE."""
    try:
        args = parse_script_args(rest)
    except ParseError:
        return False
    if not args:
        return False
    i = 0
    if len(args) > i + 1 and args[i + 1].kind is Kind.LIST:
        i += 1
    if len(args) > i + 1 and args[i + 1].kind is Kind.STRING:
        i += 1
    if len(args) <= i + 1:
        return False
    nxt = args[i + 1]
    return nxt.kind is Kind.LITERAL or (nxt.atom() or b"").lower() == b"catenate"


class _Run:
    def __init__(self, script: Script, target: Target, account: Account) -> None:
        self.script = script
        self.target = target
        self.account = account
        self.deadline = time.monotonic() + target.timeout
        self.failures: list[Failure] = []
        self.warnings: list[str] = []
        self.output: list[str] = []
        self.variables: dict[str, bytes] = {}
        self.matcher = Matcher(self.variables)
        self.conns: list[Connection] = []
        self.internaldates: dict[tuple[bytes, int], tuple[int, int]] = {}
        self.source: MboxSource | None = None
        self.mailbox = target.mailbox.encode()
        self.group_index = -1
        self.group: Group | None = None
        self.init_done = False
        self.pending: dict[str, Command] = {}
        self.sent: dict[str, bytes] = {}
        self.first_tag = ""
        self.found: list[bool] = []
        self.maybes: list[tuple[int, str]] = []
        self.mismatches = 0
        self.first_extra = ""
        self.received: list[str] = []
        self.where = "connecting"
        self.groups_done = 0
        self.dropped_by = ""

    # --- failures ----------------------------------------------------------------------------

    def _where(self, command: Command | None = None) -> str:
        if not self.init_done or self.group is None:
            return "initialization"
        cmd = command or self.group.commands[0]
        line = f"line {cmd.line}" if cmd.line else "the LOGOUT added at the end"
        conn = f", connection {self.group.connection + 1}" if self.script.connections > 1 else ""
        return (f"command group {self.group_index + 1}/{len(self.script.groups)} ({line}{conn}): "
                f"{cmd.display}")

    def fail(self, reason: str, expected: str = "", got: Sequence[str] = (), command: Command | None = None) -> None:
        self.failures.append(Failure(self._where(command), reason, expected, list(got)))

    # --- the accounts ------------------------------------------------------------------------

    def _account_of(self, index: int) -> Account:
        wanted = self.script.users.get(index + 1)
        if wanted in ("$user2", "${user2}"):
            return self.target.user2 or self.account  # without one the test is skipped
        if wanted:
            return Account(wanted, self.account.password)  # "user N: name": that user, same password
        return self.account

    def _set_variables(self) -> None:
        for i in range(self.script.connections):
            account = self._account_of(i)
            suffix = "" if i == 0 else str(i + 1)
            user, _, domain = account.user.partition("@")
            self.variables["user" + suffix] = account.user.encode()
            self.variables["username" + suffix] = user.encode()
            self.variables["domain" + suffix] = (domain or self.target.host).encode()
            self.variables["password" + suffix] = account.password.encode()
        self.variables["mailbox"] = self.mailbox
        self.variables["mailbox_url"] = mailbox_url(self.target.mailbox).encode()

    # --- set-up (imaptest's "startup state") --------------------------------------------------

    def _setup_command(self, conn: Connection, command: bytes, *, ok_only: bool = True) -> list[Response]:
        response, untagged = conn.run(command)
        status = (response.args[1].atom() or b"").upper() if len(response.args) > 1 else b""
        if status == b"BAD" or (status != b"OK" and ok_only):
            raise ProtocolError(f"{command.split(b' ', 1)[0].decode()} failed: {response.text}")
        return untagged

    def _missing(self, caps: list[bytes]) -> list[str]:
        have = {c.upper() for c in caps}
        return [c for c in self.script.capabilities if c.encode().upper() not in have]

    def setup(self) -> None:
        script = self.script
        self._set_variables()
        self.source = MboxSource(script.mbox)
        for i in range(script.connections):
            self.where = f"connecting (connection {i + 1})"
            conn = Connection(i, _global_id(), self.target.host, self.target.port, self.deadline,
                              self.warnings, self.internaldates)
            conn.storage = self.mailbox
            conn.allow_literal_plus = self.target.literal_plus
            self.conns.append(conn)
            greeting = conn.read()
            words = [a.atom() or b"" for a in greeting.args[:2]] if greeting else []
            if greeting is None or words[:1] != [b"*"] or words[1:2] not in ([b"OK"], [b"PREAUTH"]):
                raise ProtocolError(f"Malformed banner: {greeting.text if greeting else 'none'}")
            if words[1] == b"PREAUTH":
                conn.preauth, conn.login = True, Login.AUTH
            raw = greeting.raw.decode("latin-1")
            if "[CAPABILITY " in raw:
                conn.caps = [c.encode("latin-1") for c in raw.split("[CAPABILITY ", 1)[1].split("]")[0].split()]
            else:
                self._setup_command(conn, b"CAPABILITY")
        needs_user2 = script.require_user2 and self.target.user2 is None
        if script.state is State.NONAUTH:
            missing = self._missing(self.conns[0].caps)
            if missing or needs_user2:
                raise _Skip(self._skip_reason(missing, needs_user2))
            return
        for conn in self.conns:
            if not conn.preauth:
                self.where = f"LOGIN (connection {conn.index + 1})"
                account = self._account_of(conn.index)
                self._setup_command(conn, b"LOGIN " + quote(account.user.encode()) + b" " +
                                    quote(account.password.encode()))
        first = self.conns[0]
        self.where = "CAPABILITY after login"
        self._setup_command(first, b"CAPABILITY")
        missing = self._missing(first.caps)
        if missing or needs_user2:
            raise _Skip(self._skip_reason(missing, needs_user2))
        self._delete_test_mailboxes(first)
        if script.state >= State.CREATED and self.mailbox.upper() != b"INBOX":
            self.where = "CREATE of the test mailbox"
            self._setup_command(first, b"CREATE " + quote(self.mailbox))
        if script.state >= State.APPENDED:
            self.where = "APPEND of the test messages"
            count = 0
            while (script.messages == ALL and not self.source.at_end) or (script.messages != ALL and
                                                                           count < script.messages):
                tag = first.next_tag()
                self._queue_mbox_append(first, tag, quote(first.storage), with_date=True)
                self._wait_setup_reply(first, tag)
                count += 1
        if script.state is State.SELECTED:
            for conn in self.conns:
                self.where = f"SELECT (connection {conn.index + 1})"
                self._setup_command(conn, b"SELECT " + quote(self.mailbox))

    def _skip_reason(self, missing: list[str], needs_user2: bool) -> str:
        parts = []
        if missing:
            parts.append("missing capabilit" + ("ies " if len(missing) > 1 else "y ") + " ".join(missing))
        if needs_user2:
            parts.append("needs a second user (user 2: $user2), none configured")
        return "; ".join(parts)

    def _wait_setup_reply(self, conn: Connection, tag: str) -> None:
        while True:
            response = conn.read()
            if response is None:
                raise ProtocolError("Unexpected disconnection during set-up")
            word = response.args[0].atom() if response.args else None
            if word == b"+":
                conn.continuation()
            elif word == b"*":
                conn.track_untagged(response.args[1:])
            elif word == tag.encode():
                conn.command_done(tag)
                status = (response.args[1].atom() or b"").upper() if len(response.args) > 1 else b""
                if status != b"OK":
                    raise ProtocolError(f"APPEND failed: {response.text}")
                return
            else:
                raise ProtocolError(f"Unexpected tagged reply: {response.text}")

    def _delete_test_mailboxes(self, conn: Connection) -> None:
        """LIST and LSUB ``imaptest*``, then DELETE and UNSUBSCRIBE all of them, deepest first."""
        self.where = "LIST/LSUB/DELETE of earlier test mailboxes"
        mask = quote(self.mailbox + b"*")
        names: dict[bytes, list[bytes]] = {b"LIST": [], b"LSUB": []}
        for verb in (b"LIST", b"LSUB"):
            for response in self._setup_command(conn, verb + b' "" ' + mask):
                args = response.args[1:]
                if (len(args) >= 4 and (args[0].atom() or b"").upper() == verb and args[1].kind is Kind.LIST
                        and args[3].is_astring):
                    names[verb].append(args[3].data)
        for verb, command in ((b"LIST", b"DELETE "), (b"LSUB", b"UNSUBSCRIBE ")):
            for name in sorted(names[verb], key=lambda n: n.lower(), reverse=True):
                self._setup_command(conn, command + quote(name), ok_only=False)
                self.internaldates.clear()

    def _queue_mbox_append(self, conn: Connection, tag: str, args: bytes, *, with_date: bool) -> None:
        assert self.source is not None
        message = self.source.next()
        command = b"APPEND " + args
        if with_date:
            command += b' "' + message.internaldate.encode() + b'"'
        conn.last_sent_state = "append"
        conn.queue_command(tag, command + b" {%d}\r\n" % len(message.data) + message.data)

    # --- the test's commands -----------------------------------------------------------------

    def _send(self, conn: Connection, group: Group, cmd: Command) -> str:
        try:
            text = self.matcher.expand_all(cmd.text)
        except Uninitialized as exc:
            self.fail(str(exc), command=cmd)
            text = exc.partial  # as imaptest: the line up to the variable goes out anyway
        lowered = text.lower()
        tag = conn.next_tag()
        self.sent[tag] = text
        if lowered == b"append":
            self._queue_mbox_append(conn, tag, b'"' + conn.storage + b'"', with_date=True)
        elif lowered.startswith(b"append ") and not _append_has_body(text[7:]):
            self._queue_mbox_append(conn, tag, text[7:], with_date=False)
        else:
            if cmd.line == 0 or lowered == b"logout" or group.have_untagged_bye:
                conn.last_sent_state, conn.logout_sent = "logout", True
            else:
                conn.last_sent_state = ""
            conn.selecting(text)
            verb = lowered.partition(b" ")[0]
            if verb in (b"delete", b"rename"):
                self.internaldates.clear()
            conn.queue_command(tag, text)
        return tag

    def run_group(self, index: int, group: Group) -> None:
        self.group_index, self.group = index, group
        conn = self.conns[group.connection]
        self.found = [False] * len(group.untagged)
        self.maybes = [(0, "")] * len(group.untagged)
        self.mismatches, self.first_extra, self.received = 0, "", []
        self.matcher.start_group(len(conn.view))
        self.pending = {}
        for cmd in group.commands:
            tag = self._send(conn, group, cmd)
            self.pending[tag] = cmd
            if cmd is group.commands[0]:
                self.first_tag = tag
        while self.pending:
            response = conn.read()
            if response is None:
                if group.have_untagged_bye and conn.seen_bye:
                    for cmd in group.commands:
                        if not _is_any(cmd.reply):
                            self.fail(f"Command expected '{cmd.reply_text}' as tagged reply - only \"\" allowed "
                                      "when BYE happens", command=cmd)
                    break
                self.fail("Unexpected disconnection", got=self.received[-12:])
                raise _Stop
            try:
                self._dispatch(conn, group, response)
            except _Dropped:
                self._group_finished(group)
                if index + 1 < len(self.script.groups):
                    self.group_index, self.group = index + 1, self.script.groups[index + 1]
                    self.fail(f"Unexpected disconnection (imaptest drops the connection after a {self.dropped_by})")
                raise _Stop from None
        self._group_finished(group)

    def _dispatch(self, conn: Connection, group: Group, response: Response) -> None:
        args = response.args
        word = args[0].atom() if args else None
        if word is None:
            if args:
                raise ProtocolError("Broken tag: " + response.text)
            return  # an empty line: imaptest ignores it
        if word == b"+":
            conn.continuation()
        elif word == b"*":
            conn.track_untagged(args[1:])
            self.received.append(response.text)
            if self.init_done:
                self._match_untagged(conn, group, args[1:], response)
            if len(args) > 2 and (args[1].atom() or b"").isdigit() and (args[2].atom() or b"").upper() == b"EXPUNGE":
                self.matcher.expunged(int(args[1].data))
        else:
            self._tagged(conn, word.decode("latin-1"), args, response)

    def _match_untagged(self, conn: Connection, group: Group, args: list[Arg], response: Response) -> None:
        untagged = group.untagged
        if not untagged and (self.script.ignore_extra_untagged or conn.last_sent_state == "logout"):
            return
        first = (args[0].atom() or b"").upper() if args else b""
        prefix = first in (b"OK", b"NO", b"BAD", b"BYE")
        tag = self.first_tag.encode() if self.first_tag in self.pending else None
        self.matcher.added.clear()
        found_some = False
        for i, expected in enumerate(untagged):
            if self.found[i]:
                continue
            if tag is not None:
                self.variables["tag"] = tag
            count = self.matcher.match_args(expected.args, args, prefix=prefix)
            if tag is not None:
                self.variables.pop("tag", None)
            if count == FULL:
                if expected.existence is Existence.MUST_NOT:
                    self.fail("Unexpected untagged match (a reply the script forbids)",
                              expected=_one_line(expected.text),
                              got=[response.text])
                    return
                self.found[i] = found_some = True
                self.matcher.added.clear()
                continue
            if self.maybes[i][0] < count:
                self.maybes[i] = (count, response.text)
            self.matcher.revert()
        if not found_some:
            self.mismatches += 1
            if not self.script.ignore_extra_untagged and not self.first_extra:
                self.first_extra = response.text

    def _tagged(self, conn: Connection, tag: str, args: list[Arg], response: Response) -> None:
        cmd = self.pending.get(tag)
        if cmd is None:
            raise ProtocolError("Unexpected tagged reply: " + response.text)
        status = (args[1].atom() or b"").upper() if len(args) > 1 else b""
        if status not in (b"OK", b"NO", b"BAD"):
            raise ProtocolError("Broken tagged reply: " + response.text)
        conn.command_done(tag)
        conn.track_tagged(self.sent[tag], args[1:])
        self.variables["tag"] = tag.encode()
        count = self.matcher.match_args(cmd.reply or [], args[1:], prefix=True)
        self.variables.pop("tag", None)
        if count != FULL:
            got_text = response.text.split(" ", 1)[1] if " " in response.text else response.text
            self.fail(f"Expected tagged reply '{cmd.reply_text}', got '{got_text}'", expected=f"{cmd.reply_text}",
                      got=[response.text], command=cmd)
        del self.pending[tag]
        if status == b"BAD" and not _expects_bad(cmd.reply):
            # imaptest drops the connection on a BAD the script did not ask for ("" included)
            self.dropped_by = f"BAD reply to {cmd.display!r}: {response.text}"
            self.warnings.append(f"connection {conn.index + 1}: {self.dropped_by}")
            raise _Dropped

    def _group_finished(self, group: Group) -> None:
        self.groups_done += 1
        missing = [i for i, u in enumerate(group.untagged) if u.existence is Existence.MUST and not self.found[i]]
        if missing:
            first = group.untagged[missing[0]]
            written = first.text[2:]
            expanded = self.matcher.expand_all(written.encode(), skip_uninitialized=True)
            expanded_text = _one_line(expanded.decode("utf-8", "backslashreplace"))
            expected = f"{first.existence.value} {_one_line(written)}" + (
                f"   (expanded: {first.existence.value} {expanded_text})" if expanded_text != _one_line(written)
                else "")
            best = self.maybes[missing[0]][1]
            got = ([f"(closest) {best}"] if best else []) + [f"(received) {r}" for r in self.received[:12]]
            if not self.received:
                got = ["(no untagged reply)"]
            self.fail(f"Missing {len(missing)} untagged replies ({self.mismatches} mismatches)", expected=expected,
                      got=got)
        if self.first_extra:
            self.fail(f"{self.mismatches} unexpected untagged replies received", got=[self.first_extra])
        for line in group.output:
            try:
                self.output.append(self.matcher.expand_all(line).decode("utf-8", "backslashreplace"))
            except Uninitialized as exc:
                self.fail(str(exc))
        if group.sleep_ms:
            time.sleep(min(group.sleep_ms / 1000, max(0.0, self.deadline - time.monotonic())))

    # --- the whole test ----------------------------------------------------------------------

    def run(self) -> Result:
        start = time.monotonic()
        status, reason = Status.PASS, ""
        try:
            if self.target.prepare is not None:
                self.where = "preparing the account"
                self.target.prepare(self.target, self.account)
            self.setup()
            self.init_done = True
            for index, group in enumerate(self.script.groups):
                self.run_group(index, group)
        except _Skip as skip:
            status, reason = Status.SKIP, str(skip)
        except _Stop:
            pass
        except ProtocolError as exc:
            self.fail(str(exc), got=self.received[-12:] if self.init_done else ())
        except (Timeout, TimeoutError) as exc:
            if self.init_done and self.group is not None:
                waiting = ", ".join(f"{t} {self.sent[t].decode('utf-8', 'replace')[:80]!r}" for t in self.pending)
                where = self._where() + (f"; waiting for the reply to {waiting}" if waiting else "")
            else:
                where = self.where
            status, reason = Status.TIMEOUT, f"{exc} after {self.target.timeout:.0f} s, at {where}"
        except OSError as exc:
            self.fail(f"connection error at {self.where}: {exc}")
        finally:
            for conn in self.conns:
                conn.close()
        if self.failures and status is not Status.SKIP:
            if status is Status.TIMEOUT:
                self.warnings.append(reason)
                reason = ""
            status = Status.FAIL
        return Result(self.script.name, status, time.monotonic() - start, reason, self.failures, self.warnings,
                      self.output, self.groups_done, bool(self.script.capabilities))


def empty_account(target: Target, account: Account) -> None:
    """A ``prepare`` hook: over IMAP, delete every mailbox but INBOX, drop every subscription
    and expunge INBOX, so each test starts on an empty account (refusals are ignored)."""
    conn = Connection(0, _global_id(), target.host, target.port, time.monotonic() + target.timeout, [], {})
    try:
        if conn.read() is None:
            raise ProtocolError("no greeting while emptying the account")
        conn.run(b"LOGIN " + quote(account.user.encode()) + b" " + quote(account.password.encode()))
        for verb, command in ((b"LIST", b"DELETE "), (b"LSUB", b"UNSUBSCRIBE ")):
            _, untagged = conn.run(verb + b' "" "*"')
            names = [r.args[4].data for r in untagged
                     if len(r.args) >= 5 and (r.args[1].atom() or b"").upper() == verb and r.args[4].is_astring]
            for name in sorted(names, key=lambda n: n.lower(), reverse=True):
                if verb == b"LSUB" or name.upper() != b"INBOX":
                    conn.run(command + quote(name))
        response, _ = conn.run(b"SELECT INBOX")
        if len(response.args) > 1 and (response.args[1].atom() or b"").upper() == b"OK" and conn.view:
            conn.run(b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
            conn.run(b"EXPUNGE")
        conn.run(b"LOGOUT")
    finally:
        conn.close()


def run_script(script: Script, target: Target, account: Account | None = None) -> Result:
    return _Run(script, target, account or target.account_for(script.name)).run()


def run_tests(target: Target, folder: Path = TESTS_DIR, names: Sequence[str] | None = None,
              workers: int = 1) -> list[Result]:
    """Every test of ``folder`` (or ``names``), ``workers`` at a time, in name order."""
    chosen = list(names) if names is not None else list_tests(folder)

    def one(name: str) -> Result:
        try:
            script = parse_script(folder / name)
        except (ScriptError, ValueError, OSError) as exc:
            return Result(name, Status.FAIL, 0.0, failures=[Failure("reading the test file", str(exc))])
        return run_script(script, target)

    if workers <= 1:
        return [one(n) for n in chosen]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imaptest") as pool:
        return list(pool.map(one, chosen))


def counts(results: Sequence[Result]) -> dict[Status, int]:
    return {s: sum(1 for r in results if r.status is s) for s in Status}


def report(results: Sequence[Result], title: str = "", seconds: float | None = None) -> str:
    c = counts(results)
    total = ", ".join(f"{c[s]} {s.value}" for s in Status)
    took = f", {seconds:.1f} s" if seconds is not None else ""
    lines = [f"imaptest scripted tests{' against ' + title if title else ''}: {total} ({len(results)} tests{took})"]
    for label, ext in (("base protocol", False), ("extensions", True)):
        chosen = [r for r in results if r.extension is ext]
        lines.append(f"  {label}: {sum(len(r.failures) for r in chosen)}/{sum(r.groups_done for r in chosen)} "
                     "individual commands failed (imaptest's count: failures / command groups run)")
    order = {Status.FAIL: 0, Status.TIMEOUT: 1, Status.SKIP: 2, Status.PASS: 3}
    for result in sorted(results, key=lambda r: (order[r.status], r.name)):
        lines.append(result.report())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.imaptest.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tests to run (default: every test of the folder)")
    parser.add_argument("--tests", type=Path, default=TESTS_DIR, help="the tests folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--user", help="the account every test runs on")
    parser.add_argument("--password")
    parser.add_argument("--dovecot", action="store_true",
                        help="start a private Dovecot (dovecot-imapd) with a fresh user per test and run against it")
    parser.add_argument("--timeout", type=float, default=30.0, help="per test, seconds (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="tests run at once (default: %(default)s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also show warnings and !output lines")
    options = parser.parse_args(argv)
    names = options.names or list_tests(options.tests)
    start = time.monotonic()
    if options.dovecot:
        from tests.imaptest.dovecot import private_dovecot

        users = {name: f"u{i}" for i, name in enumerate(names, 1)}
        with private_dovecot(list(users.values()), "pass") as server:
            target = Target(options.host, server.port, lambda n: Account(users[n], "pass"), timeout=options.timeout)
            results = run_tests(target, options.tests, names, options.workers)
            title = f"a private Dovecot on 127.0.0.1:{server.port}"
    else:
        if not options.user or options.password is None:
            parser.error("--user and --password are needed (or --dovecot)")
        account = Account(options.user, options.password)
        target = Target(options.host, options.port, lambda _n: account, timeout=options.timeout)
        results = run_tests(target, options.tests, names, options.workers)
        title = f"{options.host}:{options.port}"
    print(report(results, title, time.monotonic() - start))
    if options.verbose:
        for result in results:
            for line in result.warnings + result.output:
                print(f"{result.name}: {line}")
    c = counts(results)
    return 1 if c[Status.FAIL] or c[Status.TIMEOUT] else 0


if __name__ == "__main__":
    raise SystemExit(main())
