"""SEARCHRES (RFC 5182) and CONTEXT=SEARCH (RFC 5267 §4) on the store backend: a search's
updates follow another session's STORE and EXPUNGE, at NOOP and within a second in IDLE,
and mail stored by another process (another node: no wake-up of this one); ``$`` keeps the
messages saved, whatever the updates say."""

from __future__ import annotations

from gateway.accounts.pros import pro_by_address
from gateway.mailstore.messages import append_message
from tests.imap_server.kit import PLAIN, ImapEnv, wire_tls
from tests.imap_server.test_concurrency import _read_until


def test_updates_follow_other_sessions_and_nodes(env: ImapEnv, filled: str) -> None:
    a, b = wire_tls(env, filled), wire_tls(env, filled)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    assert a.ok("SEARCH RETURN (SAVE UPDATE ALL) UNFLAGGED")[:-1] == [b'* ESEARCH (TAG "t3") ALL 1:3\r\n']
    b.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert a.ok("NOOP")[:-1] == [b"* 2 FETCH (FLAGS (\\Recent \\Flagged))\r\n",
                                 b'* ESEARCH (TAG "t3") REMOVEFROM (0 2)\r\n']
    a.send(b"i1 IDLE\r\n")
    assert a.response() == b"+ idling\r\n"
    b.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")
    lines, took = _read_until(a, b"ESEARCH", 3)
    assert lines[-1] == b'* ESEARCH (TAG "t3") ADDTO (0 2)\r\n' and took < 1.0
    svc = env.live.services
    with svc.db.write() as session:  # no hub.notify: as if another gateway process stored it
        pro = pro_by_address(session, filled)
        assert pro is not None
        append_message(session, svc.keys, pro.mailbox_id, "INBOX", PLAIN)
    lines, took = _read_until(a, b"ESEARCH", 3)
    assert lines[-3:] == [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n", b'* ESEARCH (TAG "t3") ADDTO (0 4)\r\n']
    assert took < 1.0
    a.send(b"DONE\r\n")
    assert a.until("i1")[-1] == b"i1 OK IDLE terminated\r\n"
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    # REMOVEFROM before the EXPUNGE, with the number the client knew (RFC 5267 §4.3).
    assert a.ok("NOOP")[:-1] == [b'* ESEARCH (TAG "t3") REMOVEFROM (0 1)\r\n', b"* 1 EXPUNGE\r\n"]
    # "$" still holds what the SEARCH saved, less the expunged message (RFC 5182 §2.1).
    assert a.ok("UID FETCH $ (FLAGS)")[:-1] == [b"* 1 FETCH (FLAGS (\\Recent) UID 2)\r\n",
                                                b"* 2 FETCH (FLAGS (\\Recent) UID 3)\r\n"]
    a.ok('CANCELUPDATE "t3"')
    b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert a.ok("NOOP")[:-1] == [b"* 1 FETCH (FLAGS (\\Recent \\Flagged))\r\n"]
    a.close()
    b.close()
