"""Transcripts: authenticated-state commands (RFC 3501 §6.3; RFC 6154, 5258, 5161, 2342,
4315 APPENDUID, 7889 APPENDLIMIT) over IMAPS against the real store."""

from __future__ import annotations

import re

from tests.imap_server.kit import PLAIN, ImapEnv, tagged, wire_tls


def test_list_special_use_children_and_lsub(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    lines = wire.ok('LIST "" "*"')
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n' in lines
    assert b'* LIST (\\HasNoChildren \\Trash) "/" Trash\r\n' in lines
    assert wire.ok('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    special = wire.ok('LIST (SPECIAL-USE) "" "*"')
    assert len(special) == 6 and all(b"INBOX" not in line for line in special)
    wire.ok('CREATE "Projets/2026/Mars"')
    lines = wire.ok('LIST "" "Projets/%"')
    assert lines[0] == b'* LIST (\\HasChildren) "/" Projets/2026\r\n' and len(lines) == 2
    assert wire.ok('LIST "Projets/" "*"')[:2] == [
        b'* LIST (\\HasChildren) "/" Projets/2026\r\n', b'* LIST (\\HasNoChildren) "/" Projets/2026/Mars\r\n']
    assert len(wire.ok('LSUB "" "Projets/*"')) == 1  # CREATE subscribes nothing (RFC 3501 §6.3.3)
    wire.ok('SUBSCRIBE "Projets/2026/Mars"')
    wire.ok('SUBSCRIBE "Projets/2026"')
    wire.ok('UNSUBSCRIBE "Projets/2026"')
    lsub = wire.ok('LSUB "" "Projets/*"')
    assert lsub[0] == b'* LSUB () "/" Projets/2026/Mars\r\n' and len(lsub) == 2
    listed = wire.ok('LIST "" "Projets/*" RETURN (SUBSCRIBED)')
    assert b'* LIST (\\HasChildren) "/" Projets/2026\r\n' in listed
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Projets/2026/Mars\r\n' in listed
    assert wire.ok('LIST "" "inbox"')[0] == b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    wire.close()


def test_create_delete_rename_with_children_and_unicode(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    assert tagged(wire.cmd("CREATE INBOX")) == b"NO [ALREADYEXISTS] Mailbox already exists\r\n"
    assert tagged(wire.cmd("DELETE INBOX")) == b"NO [CANNOT] INBOX cannot be deleted\r\n"
    assert tagged(wire.cmd("DELETE Nope")) == b"NO [NONEXISTENT] No such mailbox\r\n"
    wire.ok("CREATE Dossiers/")
    wire.ok("CREATE Dossiers/Cardio")
    assert tagged(wire.cmd("CREATE Dossiers")) == b"NO [ALREADYEXISTS] Mailbox already exists\r\n"
    wire.ok("RENAME Dossiers Patients")
    names = b"".join(wire.ok('LIST "" "*"'))
    assert b"Patients/Cardio" in names and b"Dossiers" not in names
    wire.ok('CREATE "&AMk-tudes"')  # modified UTF-7 for "Études" (RFC 3501 §5.1.3)
    assert b'"/" &AMk-tudes\r\n' in b"".join(wire.ok('LIST "" "&AMk-*"'))
    wire.ok("DELETE Patients")
    listed = b"".join(wire.ok('LIST "" "Patients*"'))
    assert b'(\\Noselect \\HasChildren) "/" Patients\r\n' in listed  # RFC 3501 §6.3.4
    assert tagged(wire.cmd("CREATE (nope")).startswith(b"BAD")
    assert tagged(wire.cmd('CREATE "a*b"')) == b"NO [CANNOT] Invalid mailbox name\r\n"
    wire.ok("CREATE Recettes (USE (\\Drafts))")  # RFC 6154 §3
    assert b"\\Drafts" in b"".join(wire.ok('LIST "" "Recettes"'))
    wire.close()


def test_append_status_and_appenduid(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    wire.send(b'a1 APPEND Sent (\\Seen) " 5-Mar-2026 10:11:12 +0100" {%d}\r\n' % len(PLAIN))
    assert wire.response() == b"+ Ready for literal data\r\n"
    wire.send(PLAIN + b"\r\n")
    ok = wire.until("a1")[-1]
    match = re.match(rb"a1 OK \[APPENDUID (\d+) 1\] APPEND completed\r\n", ok)
    assert match is not None
    status = wire.ok("STATUS Sent (MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ APPENDLIMIT RECENT)")[0]
    assert status.startswith(b"* STATUS Sent (MESSAGES 1 UNSEEN 0 UIDNEXT 2 UIDVALIDITY " + match.group(1))
    assert b"APPENDLIMIT 26214400 RECENT 1)" in status  # no session took it yet (RFC 3501 §2.3.2)
    assert tagged(wire.cmd(b"APPEND Nowhere {3+}\r\nabc")) == b"NO [TRYCREATE] Destination mailbox does not exist\r\n"
    assert tagged(wire.cmd(b"APPEND Sent {30000000}")).startswith(b"NO [TOOBIG]")
    nul = PLAIN.replace(b"\r\n\r\n", b"\r\n\r\n\x00.\r\n", 1)  # RFC 3501 §4.3; issue 15 item 8
    assert tagged(wire.cmd(b"APPEND Sent {%d+}\r\n" % len(nul) + nul)) == b"NO NUL character in message\r\n"
    wire.ok(b"APPEND Sent (\\Flagged $Label1) {%d+}\r\n" % len(PLAIN) + PLAIN)
    wire.ok("SELECT Sent")
    fetched = wire.ok("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
    assert fetched[0].startswith(b'* 1 FETCH (FLAGS (\\Recent \\Seen) INTERNALDATE "05-Mar-2026 09:11:12 +0000" ')
    assert fetched[0].endswith(b"{%d}\r\n" % len(PLAIN) + PLAIN + b")\r\n")
    assert b"FLAGS (\\Recent $Label1 \\Flagged)" in fetched[1]
    wire.close()


def test_select_examine_enable_namespace(env: ImapEnv, filled: str) -> None:
    wire = wire_tls(env, filled)
    assert wire.ok("ENABLE CONDSTORE X-UNKNOWN")[0] == b"* ENABLED CONDSTORE\r\n"
    assert wire.ok("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    lines = wire.ok("SELECT INBOX")
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    assert b"* 3 EXISTS\r\n" in lines and b"* 3 RECENT\r\n" in lines  # the first to select
    assert b"* OK [UNSEEN 1] First unseen\r\n" in lines
    assert any(line.startswith(b"* OK [UIDVALIDITY ") for line in lines)
    assert b"* OK [UIDNEXT 4] Predicted next UID\r\n" in lines
    assert any(line.startswith(b"* OK [HIGHESTMODSEQ ") for line in lines)
    assert tagged(lines) == b"OK [READ-WRITE] SELECT completed\r\n"
    assert tagged(wire.cmd("ENABLE CONDSTORE")) == b"BAD Command not valid in this state\r\n"
    lines = wire.ok("EXAMINE inbox")
    assert tagged(lines) == b"OK [READ-ONLY] EXAMINE completed\r\n"
    assert b"* OK [PERMANENTFLAGS ()] Limited\r\n" in lines
    assert tagged(wire.cmd("STORE 1 +FLAGS (\\Seen)")) == b"NO [READ-ONLY] Mailbox is read-only\r\n"
    wire.ok("FETCH 1 BODY[]")  # no implicit \Seen in a read-only selection
    assert b"FLAGS ()" in wire.ok("FETCH 1 FLAGS")[0]
    assert tagged(wire.cmd("SELECT Nope")) == b"NO [NONEXISTENT] No such mailbox\r\n"
    assert tagged(wire.cmd("FETCH 1 FLAGS")) == b"BAD Command not valid in this state\r\n"  # deselected
    wire.close()


def test_select_and_login_are_audited_without_content(env: ImapEnv, account: str) -> None:
    from sqlalchemy import select

    from gateway.store.models import AuditEntry

    wire = wire_tls(env, account)
    wire.ok("SELECT INBOX")
    wire.ok("EXAMINE Sent")
    wire.close()
    with env.live.services.db.read() as session:
        rows = session.execute(select(AuditEntry).where(AuditEntry.actor == f"pro:{account}")).scalars().all()
    actions = [r.action for r in rows]
    assert actions.count("imap.login") == 1 and "imap.select" in actions and "imap.examine" in actions
    assert all(r.peer == "127.0.0.1" for r in rows)
    assert all("INBOX" not in r.details and "Sent" not in r.details for r in rows)
