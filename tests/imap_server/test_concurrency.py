"""Two sessions on one folder see each other's changes at the right moments (RFC 3501
§5.2, §7.4.1), IDLE (RFC 2177) reports new mail within a second, including mail
submitted over SMTP and mail stored without a wake-up (another process)."""

from __future__ import annotations

import time
import uuid

from gateway.accounts.pros import pro_by_address
from gateway.mailstore.messages import append_message
from gateway.testing.smtpclient import submission_client
from gateway.testing.world import PASSWORD as WORLD_PASSWORD
from tests.imap_server.kit import PLAIN, ImapEnv, Wire, wire_tls


def _read_until(wire: Wire, needle: bytes, timeout: float) -> tuple[list[bytes], float]:
    started = time.monotonic()
    wire.sock.settimeout(timeout)
    lines: list[bytes] = []
    try:
        while True:
            line = wire.response()
            lines.append(line)
            if needle in line:
                return lines, time.monotonic() - started
    except TimeoutError:
        return lines, time.monotonic() - started
    finally:
        wire.sock.settimeout(10)


def test_flags_expunge_and_new_mail_between_sessions(env: ImapEnv, filled: str) -> None:
    a, b = wire_tls(env, filled), wire_tls(env, filled)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS (\\Flagged)")
    # "a" selected first: the delivered messages are recent to it alone (RFC 3501 §2.3.2).
    assert a.ok("NOOP")[:-1] == [b"* 2 FETCH (FLAGS (\\Recent \\Flagged))\r\n"]
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    # RFC 3501 §7.4.1: no EXPUNGE during FETCH; the expunged message keeps its number.
    lines = a.ok("FETCH 1:3 (UID)")
    assert b"EXPUNGE" not in b"".join(lines)
    assert [line for line in lines if line.startswith(b"* ")] == [
        b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 2)\r\n", b"* 3 FETCH (UID 3)\r\n"]
    lines = a.ok("NOOP")
    assert lines[:-1] == [b"* 1 EXPUNGE\r\n"]
    env.deliver(filled, PLAIN)
    assert a.ok("NOOP")[:-1] == [b"* 3 EXISTS\r\n", b"* 3 RECENT\r\n"]
    # UID FETCH may carry EXPUNGE (§7.4.1 only forbids it for the sequence-number forms).
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    lines = a.ok("UID FETCH 1:* (UID)")
    assert b"* 1 EXPUNGE\r\n" in lines
    a.close()
    b.close()


def test_no_expunge_during_sort_or_thread_between_sessions(env: ImapEnv, filled: str) -> None:
    """SORT and THREAD answer with sequence numbers, like SEARCH (RFC 5256 §3, RFC 3501 §7.4.1): an
    EXPUNGE there would shift the numbers of a STORE pipelined behind them (imaptest's stress mode:
    "Referenced message expunged", then BAD for the STORE's last number). Their UID forms may carry it."""
    a, b = wire_tls(env, filled), wire_tls(env, filled)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    for command in ("SORT (ARRIVAL) US-ASCII ALL", "THREAD ORDEREDSUBJECT US-ASCII ALL"):
        lines = a.ok(command)
        assert not any(line.endswith(b" EXPUNGE\r\n") for line in lines), command
    assert a.ok("NOOP")[:-1] == [b"* 1 EXPUNGE\r\n"]
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    assert b"* 1 EXPUNGE\r\n" in a.ok("UID SORT (ARRIVAL) US-ASCII ALL")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    assert b"* 1 EXPUNGE\r\n" in a.ok("UID THREAD ORDEREDSUBJECT US-ASCII ALL")
    a.close()
    b.close()


def test_expungeissued_when_search_sort_thread_fetch_leave_out_expunged_messages(env: ImapEnv, filled: str) -> None:
    """A message another session expunged keeps its number until this session is told, but its
    contents are gone: SEARCH, SORT, THREAD and FETCH leave it out and say so with ``OK [EXPUNGEISSUED]``
    (RFC 5530 §3, RFC 2180 §4.1), as Dovecot does; imaptest's stress mode otherwise reports
    "SEARCH result missing seq N" when its criteria named that number."""
    a, b = wire_tls(env, filled), wire_tls(env, filled)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    a.ok("FETCH 1:3 (UID)")  # a learns of the expunge, and may not tell it yet (RFC 3501 §7.4.1)
    for command, data in (("SEARCH 1:3", b"* SEARCH 2 3\r\n"), ("SORT (ARRIVAL) US-ASCII 1:3", b"* SORT 2 3\r\n"),
                          ("THREAD ORDEREDSUBJECT US-ASCII 1:3", None)):
        lines = a.ok(command)
        if data is not None:
            assert lines[0] == data, command
        assert lines[-1].split(b" ", 2)[2].startswith(b"[EXPUNGEISSUED] "), lines[-1]
    lines = a.ok("FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")  # FETCH likewise (RFC 2180 §4.1.3)
    assert [line[:12] for line in lines[:-1] if line.startswith(b"* ")] == [b"* 2 FETCH (B"]
    assert lines[-1].split(b" ", 2)[2].startswith(b"[EXPUNGEISSUED] "), lines[-1]
    assert a.ok("NOOP")[:-1] == [b"* 1 EXPUNGE\r\n"]
    assert b"EXPUNGEISSUED" not in a.ok("FETCH 1 (UID)")[-1]
    lines = a.ok("SEARCH 1:2")
    assert lines == [b"* SEARCH 1 2\r\n", lines[-1]] and b"EXPUNGEISSUED" not in lines[-1]
    a.close()
    b.close()


def test_idle_reports_append_from_another_connection_within_a_second(env: ImapEnv, account: str) -> None:
    watcher, writer = wire_tls(env, account), wire_tls(env, account)
    watcher.ok("SELECT INBOX")
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.response() == b"+ idling\r\n"
    writer.ok(b"APPEND INBOX {%d+}\r\n" % len(PLAIN) + PLAIN)
    lines, took = _read_until(watcher, b"EXISTS", 3)
    assert b"* 1 EXISTS\r\n" in lines and took < 1.0
    writer.ok("SELECT INBOX")
    writer.ok("STORE 1 +FLAGS (\\Seen)")
    lines, took = _read_until(watcher, b"FETCH", 3)
    assert lines[-1] == b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n" and took < 1.0
    watcher.send(b"DONE\r\n")
    assert watcher.until("i1")[-1] == b"i1 OK IDLE terminated\r\n"
    watcher.send(b"i2 IDLE\r\n")
    assert watcher.response() == b"+ idling\r\n"
    watcher.send(b"NOPE\r\n")
    assert watcher.until("i2")[-1] == b"i2 BAD Expected DONE\r\n"
    watcher.ok("NOOP")
    watcher.close()
    writer.close()


def test_idle_sees_mail_stored_by_another_process_without_a_wakeup(env: ImapEnv, account: str) -> None:
    watcher = wire_tls(env, account)
    watcher.ok("SELECT INBOX")
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.response() == b"+ idling\r\n"
    svc = env.live.services
    with svc.db.write() as session:  # no hub.notify: as if another gateway process stored it
        pro = pro_by_address(session, account)
        assert pro is not None
        append_message(session, svc.keys, pro.mailbox_id, "INBOX", PLAIN)
    lines, took = _read_until(watcher, b"EXISTS", 3)
    assert b"* 1 EXISTS\r\n" in lines and took < 1.0
    watcher.send(b"DONE\r\n")
    watcher.until("i1")
    watcher.close()


def test_mail_submitted_over_smtp_reaches_an_idle_session(env: ImapEnv, account: str) -> None:
    watcher = wire_tls(env, account)
    watcher.ok("SELECT INBOX")
    watcher.send(b"i1 IDLE\r\n")
    assert watcher.response() == b"+ idling\r\n"
    sender = env.world.pro
    body = (f"From: {sender}\r\nTo: {account}\r\nSubject: Avis\r\nMessage-ID: <{uuid.uuid4().hex}@clinic.test>\r\n"
            "\r\nMerci pour l'adressage.\r\n").encode()
    with submission_client(env.live, sender, WORLD_PASSWORD) as smtp:
        started = time.monotonic()
        smtp.sendmail(sender, [account], body)
    lines, _ = _read_until(watcher, b"EXISTS", 3)
    assert b"* 1 EXISTS\r\n" in lines and time.monotonic() - started < 2.0
    watcher.send(b"DONE\r\n")
    watcher.until("i1")
    fetched = watcher.ok("FETCH 1 BODY.PEEK[TEXT]")[0]
    assert b"Merci pour l'adressage.\r\n" in fetched
    watcher.close()
