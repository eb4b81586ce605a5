"""Transcripts: selected-state commands (RFC 3501 §6.4; UIDPLUS, MOVE, CONDSTORE)."""

from __future__ import annotations

import re

from tests.imap_server.kit import MULTIPART, NON_ASCII, PLAIN, ImapEnv, tagged, wire_tls


def test_fetch_items_sections_and_partials(env: ImapEnv, filled: str) -> None:
    wire = wire_tls(env, filled)
    wire.ok("SELECT INBOX")
    lines = wire.ok("FETCH 2 (UID RFC822.SIZE BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<0.10>)")
    assert lines[0].startswith(b"* 2 FETCH (UID 2 RFC822.SIZE %d BODY[1] {28}\r\n" % len(MULTIPART))
    assert "Résultats en pièce jointe.".encode() in lines[0]
    assert b'BODY[2.MIME] {' in lines[0] and b"Content-Disposition: attachment" in lines[0]
    assert lines[0].endswith(b"BODY[]<0> {10}\r\n" + MULTIPART[:10] + b")\r\n")
    lines = wire.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[TEXT])")
    assert b"Subject: Compte rendu\r\n" in lines[0] and b"Date:" not in lines[0].split(b"BODY[TEXT]")[0]
    assert lines[0].endswith(b"BODY[TEXT] {34}\r\nBonjour,\r\nvoici le compte rendu.\r\n)\r\n")
    lines = wire.ok("FETCH 3 (RFC822.HEADER BODY ENVELOPE)")
    assert b"=?utf-8?b?UsOpc3VsdGF0cyBkJ2FuYWx5c2Ugw6AgdsOpcmlmaWVy?=" in lines[0]
    assert b'BODY ("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 61 2)' in lines[0]
    # RFC822.HEADER does not set \Seen; BODY[] does, and the FLAGS come along (RFC 3501 §6.4.5).
    assert b"\\Seen" not in lines[0]
    lines = wire.ok("FETCH 1 BODY[]")
    assert lines[0].endswith(b"{%d}\r\n" % len(PLAIN) + PLAIN + b" FLAGS (\\Recent \\Seen))\r\n")
    lines = wire.ok("FETCH 1:* FAST")
    assert len(lines) == 4 and b"* 3 FETCH (FLAGS (\\Recent) INTERNALDATE" in lines[2]  # the first to select
    assert tagged(wire.cmd("FETCH 4 FLAGS")) == b"BAD Invalid message sequence number\r\n"
    assert wire.ok("UID FETCH 4:9 FLAGS")[:-1] == []  # UIDs that do not exist are ignored (§6.4.8)
    lines = wire.ok("UID FETCH 7:* FLAGS")  # RFC 3501 §6.4.8: 7:* is 3:7 when 3 is the last UID
    assert lines[:-1] == [b"* 3 FETCH (FLAGS (\\Recent) UID 3)\r\n"]  # UID FETCH always carries UID (§6.4.8)
    wire.close()


def test_store_modes_silent_and_condstore(env: ImapEnv, filled: str) -> None:
    wire = wire_tls(env, filled)
    wire.ok("SELECT INBOX (CONDSTORE)")
    lines = wire.ok("STORE 1:2 +FLAGS (\\Flagged \\seen $Urgent)")
    # RFC 3501 §7.2.6: the new keyword is announced before the FETCHes carry it.
    system = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"
    assert lines[:2] == [b"* FLAGS (%s $Urgent)\r\n" % system,
                         b"* OK [PERMANENTFLAGS (%s $Urgent \\*)] Limited\r\n" % system]
    fetched = rb"\* 1 FETCH \(UID 1 FLAGS \(\\Recent \$Urgent \\Flagged \\Seen\) MODSEQ \((\d+)\)\)\r\n"
    assert re.match(fetched, lines[2])
    modseq = int(re.findall(rb"MODSEQ \((\d+)\)", lines[2])[0])
    lines = wire.ok("STORE 1 -FLAGS.SILENT (\\Flagged)")
    # CONDSTORE: MODSEQ even silent
    assert lines[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Recent $Urgent \\Seen) MODSEQ")
    lines = wire.ok(f"UID STORE 1,2 (UNCHANGEDSINCE {modseq}) FLAGS (\\Answered)")
    assert tagged(lines) == b"OK [MODIFIED 1] Some messages were modified\r\n"
    assert lines[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Recent \\Answered) MODSEQ")
    lines = wire.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")
    assert [line[:9] for line in lines[:-1]] == [b"* 1 FETCH", b"* 2 FETCH"]
    wire.ok("STORE 3 FLAGS ()")
    lines = wire.ok("STORE 3 +FLAGS (\\Recent)")  # \Recent cannot be stored: a session flag
    assert lines[0].startswith(b"* 3 FETCH (UID 3 FLAGS (\\Recent) MODSEQ")
    other = wire_tls(env, filled)
    other.ok("SELECT INBOX")
    assert other.ok("FETCH 3 FLAGS")[0] == b"* 3 FETCH (FLAGS ())\r\n"
    other.close()
    wire.close()


def test_search_keys(env: ImapEnv, filled: str) -> None:
    wire = wire_tls(env, filled)
    wire.ok("SELECT INBOX")
    wire.ok("STORE 2 +FLAGS (\\Flagged)")

    def search(criteria: str | bytes) -> bytes:
        return wire.ok(b"SEARCH " + (criteria.encode() if isinstance(criteria, str) else criteria))[0]

    assert search("ALL") == b"* SEARCH 1 2 3\r\n"
    assert search("FLAGGED") == b"* SEARCH 2\r\n"
    assert search("UNFLAGGED NOT 1") == b"* SEARCH 3\r\n"
    assert search("OR 1 3") == b"* SEARCH 1 3\r\n"
    # This session selected first: the three are recent to it (RFC 3501 §2.3.2), none is old.
    assert search("RECENT") == b"* SEARCH 1 2 3\r\n" and search("OLD") == b"* SEARCH\r\n"
    assert search("NEW") == b"* SEARCH 1 2 3\r\n"  # RECENT UNSEEN: delivered mail is unseen
    assert search("FROM labo") == b"* SEARCH 2\r\n"
    assert search('SUBJECT "compte"') == b"* SEARCH 1\r\n"
    assert search("TEXT voici") == b"* SEARCH 1\r\n"
    assert search("BODY normaux") == b"* SEARCH 3\r\n"  # quoted-printable decoded
    assert search(b"CHARSET UTF-8 SUBJECT {9+}\r\n" + "vérifier".encode()) == b"* SEARCH 3\r\n"  # RFC 2047
    assert search(b"CHARSET UTF-8 FROM {10+}\r\n" + "Françoise".encode()) == b"* SEARCH 3\r\n"
    assert search("HEADER Message-ID multi-1") == b"* SEARCH 2\r\n"
    assert search("HEADER X-Absent \"\"") == b"* SEARCH\r\n"
    assert search(f"LARGER {len(PLAIN)}") == b"* SEARCH 2 3\r\n"
    assert search(f"SMALLER {len(NON_ASCII)}") == b"* SEARCH 1\r\n"
    assert search("SENTSINCE 3-Mar-2026") == b"* SEARCH 2 3\r\n"
    assert search("SENTBEFORE 3-Mar-2026") == b"* SEARCH 1\r\n"
    assert search("SENTON 4-Mar-2026") == b"* SEARCH 3\r\n"
    assert search("SINCE 1-Jan-2020 BEFORE 1-Jan-2100") == b"* SEARCH 1 2 3\r\n"
    assert search("UID 2:3") == b"* SEARCH 2 3\r\n"
    assert search("2:* UNSEEN") == b"* SEARCH 2 3\r\n"
    assert wire.ok("UID SEARCH FLAGGED")[0] == b"* SEARCH 2\r\n"
    lines = wire.ok("SEARCH MODSEQ 2 FLAGGED")  # enables CONDSTORE: HIGHESTMODSEQ first (RFC 7162 §3.1)
    assert re.match(rb"\* OK \[HIGHESTMODSEQ \d+\] Highest\r\n", lines[0])
    assert re.match(rb"\* SEARCH 2 \(MODSEQ \d+\)\r\n", lines[1])
    lines = wire.ok("SEARCH RETURN (COUNT MAX) MODSEQ 2 FLAGGED")  # RFC 4731 ESEARCH
    assert re.match(rb'\* ESEARCH \(TAG "\w+"\) MAX 2 COUNT 1 MODSEQ \d+\r\n', lines[0])
    assert tagged(wire.cmd("SEARCH CHARSET KOI8-R ALL")) == b"NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n"
    wire.close()


def test_copy_move_expunge_with_uidplus(env: ImapEnv, filled: str) -> None:
    wire = wire_tls(env, filled)
    lines = wire.ok("SELECT INBOX")
    assert tagged(wire.cmd("COPY 1 Nowhere")) == b"NO [TRYCREATE] Destination mailbox does not exist\r\n"
    ok = tagged(wire.ok("COPY 1:2 Archive"))
    assert re.match(rb"OK \[COPYUID \d+ 1:2 1:2\] COPY completed\r\n", ok)
    lines = wire.ok("UID MOVE 3 Trash")
    assert re.match(rb"\* OK \[COPYUID \d+ 3 1\] Moved\r\n", lines[0])
    assert lines[1] == b"* 3 EXPUNGE\r\n" and tagged(lines) == b"OK MOVE completed\r\n"
    wire.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert wire.ok("EXPUNGE")[0] == b"* 1 EXPUNGE\r\n"
    assert wire.ok("FETCH 1 (UID)")[0] == b"* 1 FETCH (UID 2)\r\n"
    wire.ok("SELECT Trash")
    assert wire.ok("UID FETCH 1 BODY.PEEK[]")[0].endswith(b"{%d}\r\n" % len(NON_ASCII) + NON_ASCII + b" UID 1)\r\n")
    wire.ok("SELECT Archive")
    wire.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    lines = wire.ok("UID EXPUNGE 2")  # RFC 4315 §2.1: only the named UID
    assert lines[0] == b"* 2 EXPUNGE\r\n" and len(lines) == 2
    wire.ok("CLOSE")  # expunges UID 1 silently
    status = wire.ok("STATUS Archive (MESSAGES)")[0]
    assert status == b"* STATUS Archive (MESSAGES 0)\r\n"
    wire.ok("SELECT INBOX")
    wire.ok("UNSELECT")
    assert tagged(wire.cmd("FETCH 1 FLAGS")) == b"BAD Command not valid in this state\r\n"
    wire.close()


def test_copy_reseals_under_a_new_uuid(env: ImapEnv, filled: str) -> None:
    from sqlalchemy import select

    from gateway.store.models import Folder, Message

    wire = wire_tls(env, filled)
    wire.ok("SELECT INBOX")
    wire.ok("COPY 2 Archive")
    with env.live.services.db.read() as session:
        rows = session.execute(
            select(Message.uuid, Message.sealed, Folder.name)
            .join(Folder, (Folder.mailbox_id == Message.mailbox_id) & (Folder.id == Message.folder_id))
            .where(Message.size == len(MULTIPART))
        ).all()
    mine = [r for r in rows if r.name in ("INBOX", "Archive")]
    assert len({r.uuid for r in mine}) == len(mine)
    assert all(b"Resultats" not in r.sealed and b"labo@" not in r.sealed for r in mine)
    wire.close()
