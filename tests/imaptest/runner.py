"""Our runner of imaptest's scripted tests against a live IMAP server (issue 18).

It does what ``imaptest test=DIR`` does (``test-exec.c`` on the ``release-2.3`` branch), test
by test: open the connections, log in, delete every ``imaptest*`` mailbox and subscription,
create ``imaptest``, append the test's messages (its own ``.mbox`` or ``default.mbox``) and
select it, as far as the test's ``state:`` asks; skip the test when the server lacks one of
its ``capabilities:``; then run each command group on its connection (pipelined groups at
once), match the untagged replies in any order and the tagged reply's start, and end with
LOGOUT. A test passes when no group failed; each test has a time limit.

By hand: ``.venv/bin/python -m tests.imaptest.cli --port 143 --user U --password P`` (or
``--dovecot`` for a private Dovecot, see ``tests/imaptest/dovecot.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.imaptest.connection import Connection, ProtocolError, Response, Timeout
from tests.imaptest.imapargs import Arg, Kind, ParseError, parse_script_args
from tests.imaptest.matcher import FULL, Uninitialized
from tests.imaptest.results import Failure, Result, Status
from tests.imaptest.script import Command, Existence, Group, Script, ScriptError, list_tests, parse_script
from tests.imaptest.startup import Account, Skip, Startup, Target

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _tests_dir() -> Path:
    """The data folder: ``$IMAPTEST_TESTS`` if set, else ``../shared/imaptest/tests`` from the
    repository as the design names it, else the workplace's ``/work/shared`` copy (a clone made
    elsewhere, e.g. under /tmp)."""
    if os.environ.get("IMAPTEST_TESTS"):
        return Path(os.environ["IMAPTEST_TESTS"]).resolve()
    beside = (REPO / ".." / "shared" / "imaptest" / "tests").resolve()
    workplace = Path("/work/shared/imaptest/tests")
    return beside if beside.is_dir() or not workplace.is_dir() else workplace


#: The data folder (see :func:`_tests_dir`).
TESTS_DIR = _tests_dir()


class _Stop(Exception):
    pass


class _Dropped(Exception):
    """imaptest dropped the connection (a BAD it did not expect): the group still finishes,
    the next one fails with "Unexpected disconnection"."""


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


class _Run(Startup):
    """The test's command groups, after :class:`Startup`."""

    def __init__(self, script: Script, target: Target, account: Account) -> None:
        super().__init__(script, target, account)
        self.pending: dict[str, Command] = {}  # tag -> command, of the current group
        self.sent: dict[str, bytes] = {}  # tag -> the command line as sent
        self.first_tag = ""  # the group's first command ($tag while it is pending)
        self.found: list[bool] = []  # per expected untagged reply of the group
        self.maybes: list[tuple[int, str]] = []  # per expected reply: the closest reply seen
        self.mismatches = 0
        self.first_extra = ""
        self.received: list[str] = []
        self.groups_done = 0
        self.dropped_by = ""

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
        except Skip as skip:
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
