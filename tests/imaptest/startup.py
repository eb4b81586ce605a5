"""Per-test set-up, as imaptest's "startup state" (``test_send_lstate_commands``).

Open the test's connections and read their greetings; unless the test stays ``nonauth``, log
every connection in and check the first one's capabilities after login (a missing one skips
the test); then LIST and LSUB ``imaptest*`` and DELETE and UNSUBSCRIBE all of it (deepest
first, refusals ignored), CREATE ``imaptest``, APPEND the messages and SELECT it on every
connection, as far as ``state:`` asks (``auth`` < ``created`` < ``appended`` < ``selected``).
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.imaptest.connection import Connection, Login, ProtocolError, Response
from tests.imaptest.imapargs import Kind
from tests.imaptest.matcher import Matcher
from tests.imaptest.mbox import MboxSource
from tests.imaptest.results import Failure
from tests.imaptest.script import ALL, Command, Group, Script, State


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


class Skip(Exception):
    pass


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


class Startup:
    """A test's state up to its first command, and its failures."""

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
        self.where = "connecting"

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
                raise Skip(self._skip_reason(missing, needs_user2))
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
            raise Skip(self._skip_reason(missing, needs_user2))
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
