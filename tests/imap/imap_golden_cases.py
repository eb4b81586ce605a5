"""Golden commands shared by the IMAP parser tests and the fuzz tests: wire bytes -> Command."""

from __future__ import annotations

import datetime as dt

from imap.proto import command_types as t
from imap.proto import commands as c
from imap.proto import commands_notify as n
from imap.proto.seqset import SAVED, SequenceSet

S = SequenceSet.parse
F = t.FetchAttr
PARIS = dt.timezone(dt.timedelta(hours=2))

GOLDEN: list[tuple[bytes, c.Command]] = [
    (b"a1 CAPABILITY\r\n", c.Capability("a1")),
    (b"a2 noop\r\n", c.Noop("a2")),
    (b"A3 LOGOUT\r\n", c.Logout("A3")),
    (b"t STARTTLS\r\n", c.StartTls("t")),
    (b"t ID NIL\r\n", c.Id("t", None)),
    (b't ID ("name" "mutt" "version" NIL)\r\n', c.Id("t", (("name", "mutt"), ("version", None)))),
    (b"t AUTHENTICATE PLAIN\r\n", c.Authenticate("t", "PLAIN", None)),
    (b"t AUTHENTICATE plain AGFsaWNlAHB3\r\n", c.Authenticate("t", "PLAIN", b"\x00alice\x00pw")),
    (b"t AUTHENTICATE PLAIN =\r\n", c.Authenticate("t", "PLAIN", b"")),
    (b"t LOGIN alice secret\r\n", c.Login("t", "alice", "secret")),
    (b't LOGIN "al\\"ice" "p w\\\\"\r\n', c.Login("t", 'al"ice', "p w\\")),
    (b"t LOGIN {5}\r\nalice {6}\r\nsecret\r\n", c.Login("t", "alice", "secret")),
    (b't LOGIN {5+}\r\nalice "\xc3\xa9t\xc3\xa9"\r\n', c.Login("t", "alice", "été")),
    (b"t SELECT inbox\r\n", c.Select("t", "INBOX")),
    (b"t SELECT INBOX (CONDSTORE)\r\n", c.Select("t", "INBOX", condstore=True)),
    (b't EXAMINE "Sent Items"\r\n', c.Examine("t", "Sent Items")),
    (b"t CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n", c.Create("t", "~peter/mail/台北/日本語")),
    (b"t CREATE Drafts2 (USE (\\Drafts))\r\n", c.Create("t", "Drafts2", ("\\Drafts",))),
    (b"t DELETE foo&-bar\r\n", c.Delete("t", "foo&bar")),
    (b"t RENAME old new\r\n", c.Rename("t", "old", "new")),
    (b"t SUBSCRIBE Archive\r\n", c.Subscribe("t", "Archive")),
    (b"t UNSUBSCRIBE Archive\r\n", c.Unsubscribe("t", "Archive")),
    (b't LIST "" *\r\n', c.List("t", "", ("*",))),
    (b"t LIST ~/Mail/ %\r\n", c.List("t", "~/Mail/", ("%",))),
    (b't LIST "" INBOX.%]\r\n', c.List("t", "", ("INBOX.%]",))),
    (
        b't LIST (SPECIAL-USE) "" ("*" Arch%) RETURN (special-use CHILDREN)\r\n',
        c.List("t", "", ("*", "Arch%"), ("SPECIAL-USE",), ("SPECIAL-USE", "CHILDREN")),
    ),
    (b't LSUB "#news." "comp.mail.*"\r\n', c.Lsub("t", "#news.", "comp.mail.*")),
    # A pattern that is not valid modified UTF-7 matches nothing (left out; LSUB: None), as
    # Dovecot answers (imaptest's atoms test); so does any pattern under such a reference.
    (b"t LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*\r\n", c.List("t", "", ())),
    (b't LIST "" (&ZZ* INBOX)\r\n', c.List("t", "", ("INBOX",))),
    (b"t LIST a&ZZ *\r\n", c.List("t", "", ())),
    (b't LSUB "" &ZZ\r\n', c.Lsub("t", "", None)),
    (
        b"t STATUS blurdybloop (UIDNEXT MESSAGES highestmodseq)\r\n",
        c.Status(
            "t",
            "blurdybloop",
            (c.StatusItem.UIDNEXT, c.StatusItem.MESSAGES, c.StatusItem.HIGHESTMODSEQ),
        ),
    ),
    (
        b't APPEND saved-messages (\\Seen) "05-Jul-1994 02:44:25 +0200" {10}\r\nHello\r\nYou\r\n',
        c.Append(
            "t",
            "saved-messages",
            ("\\Seen",),
            dt.datetime(1994, 7, 5, 2, 44, 25, tzinfo=PARIS),
            b"Hello\r\nYou",
        ),
    ),
    (b"t APPEND INBOX {3+}\r\nabc\r\n", c.Append("t", "INBOX", (), None, b"abc")),
    (b"t APPEND INBOX () {0}\r\n\r\n", c.Append("t", "INBOX", (), None, b"")),
    # RFC 3502 §6.3.11 MULTIAPPEND: several messages, each with its own flags and date-time.
    (
        b't APPEND INBOX (\\Seen) {3}\r\nabc "05-Jul-1994 02:44:25 +0200" {2+}\r\nde {0}\r\n\r\n',
        c.Append("t", "INBOX", ("\\Seen",), None, b"abc", None, (
            c.AppendMessage((), dt.datetime(1994, 7, 5, 2, 44, 25, tzinfo=PARIS), b"de"),
            c.AppendMessage((), None, b""),
        )),
    ),
    # RFC 3516 §4.2: a literal8 (NUL allowed), synchronizing or not, alone or in a MULTIAPPEND.
    (b"t APPEND INBOX ~{3}\r\na\x00b\r\n", c.Append("t", "INBOX", (), None, b"a\x00b", binary=True)),
    (
        b"t APPEND INBOX {1+}\r\nx (\\Seen) ~{2+}\r\n\x00\xff\r\n",
        c.Append("t", "INBOX", (), None, b"x", None, (c.AppendMessage(("\\Seen",), None, b"\x00\xff", binary=True),)),
    ),
    # RFC 4469 §5 CATENATE: TEXT literals and URL astrings, then a plain literal (with MULTIAPPEND).
    (
        b't APPEND Sent catenate (URL "/INBOX/;uid=2/;section=HEADER" TEXT {5}\r\nbody1) (\\Draft) {1+}\r\nx\r\n',
        c.Append("t", "Sent", (), None, b"", (
            c.CatenatePart(url="/INBOX/;uid=2/;section=HEADER"), c.CatenatePart(text=b"body1"),
        ), (c.AppendMessage(("\\Draft",), None, b"x"),)),
    ),
    (b"t ENABLE CONDSTORE utf8=accept\r\n", c.Enable("t", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"t NAMESPACE\r\n", c.Namespace("t")),
    (b"t IDLE\r\n", c.Idle("t")),
    (b"t COMPRESS deflate\r\n", c.Compress("t", "DEFLATE")),  # RFC 4978
    (  # RFC 5819 LIST-STATUS, RFC 8438 SIZE, RFC 8474 MAILBOXID
        b't LIST "" % RETURN (CHILDREN status (MESSAGES size MAILBOXID))\r\n',
        c.List("t", "", ("%",), (), ("CHILDREN", "STATUS"),
               (c.StatusItem.MESSAGES, c.StatusItem.SIZE, c.StatusItem.MAILBOXID)),
    ),
    (b"t CHECK\r\n", c.Check("t")),
    (b"t CLOSE\r\n", c.Close("t")),
    (b"t UNSELECT\r\n", c.Unselect("t")),
    (b"t EXPUNGE\r\n", c.Expunge("t")),
    (b"t UID EXPUNGE 3000:3002\r\n", c.Expunge("t", True, S("3000:3002"))),
    (b"t SEARCH ALL\r\n", c.Search("t", False, None, t.SearchAll())),
    (
        b't SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n',
        c.Search(
            "t",
            False,
            None,
            t.SearchAnd(
                (
                    t.SearchFlag("\\Flagged"),
                    t.SearchDate(t.DateField.INTERNAL, t.DateOp.SINCE, dt.date(1994, 2, 1)),
                    t.SearchNot(t.SearchHeader("From", "Smith")),
                )
            ),
        ),
    ),
    (
        b"t UID SEARCH CHARSET UTF-8 TEXT {5}\r\n\xc3\xa9t\xc3\xa9 OR NEW UID 1:*\r\n",
        c.Search(
            "t",
            True,
            "UTF-8",
            t.SearchAnd(
                (
                    t.SearchText(t.TextScope.TEXT, "été"),
                    t.SearchOr(
                        t.SearchAnd((t.SearchFlag("\\Recent"), t.SearchFlag("\\Seen", False))),
                        t.SearchSet(S("1:*"), uid=True),
                    ),
                )
            ),
        ),
    ),
    (
        b't SEARCH (OLD KEYWORD $Junk) 2,4:* LARGER 10 SMALLER 99 HEADER X-Prio 1 SENTON "3-Mar-2020"\r\n',
        c.Search(
            "t",
            False,
            None,
            t.SearchAnd(
                (
                    t.SearchAnd((t.SearchFlag("\\Recent", False), t.SearchFlag("$Junk"))),
                    t.SearchSet(S("2,4:*")),
                    t.SearchSize(True, 10),
                    t.SearchSize(False, 99),
                    t.SearchHeader("X-Prio", "1"),
                    t.SearchDate(t.DateField.SENT, t.DateOp.ON, dt.date(2020, 3, 3)),
                )
            ),
        ),
    ),
    (
        b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338 BODY x\r\n',
        c.Search(
            "a",
            False,
            None,
            t.SearchAnd((t.SearchModSeq(620162338, "/flags/\\draft", "all"), t.SearchText(t.TextScope.BODY, "x"))),
        ),
    ),
    (b"t SEARCH MODSEQ 5\r\n", c.Search("t", False, None, t.SearchModSeq(5))),
    # RFC 4731 §3.1 ESEARCH: RETURN options before CHARSET; "()" means ALL.
    (b"t SEARCH RETURN (MIN max Count ALL) ALL\r\n",
     c.Search("t", False, None, t.SearchAll(), ("MIN", "MAX", "COUNT", "ALL"))),
    (b"t UID SEARCH RETURN () CHARSET UTF-8 ALL\r\n", c.Search("t", True, "UTF-8", t.SearchAll(), ("ALL",))),
    # RFC 5182 SEARCHRES: SAVE, "$" as a search key and in UID; RFC 5267 §4 UPDATE, CONTEXT, PARTIAL
    # (either order, RFC 9394 from the end); CANCELUPDATE takes strings.
    (b"t SEARCH RETURN (save MIN) $\r\n", c.Search("t", False, None, t.SearchSet(SAVED), ("SAVE", "MIN"))),
    (b"t UID SEARCH RETURN (UPDATE context partial 4:2) OR UID $ 7\r\n",
     c.Search("t", True, None, t.SearchOr(t.SearchSet(SAVED, uid=True), t.SearchSet(S("7"))),
              ("UPDATE", "CONTEXT", "PARTIAL"), (2, 4))),
    (b"t SEARCH RETURN (CONTEXT) 1\r\n", c.Search("t", False, None, t.SearchSet(S("1")), ("CONTEXT", "ALL"))),
    (b"t SEARCH RETURN (PARTIAL -100:-1 COUNT) ALL\r\n",
     c.Search("t", False, None, t.SearchAll(), ("PARTIAL", "COUNT"), (-1, -100))),
    (b't CANCELUPDATE "a1" {2+}\r\nb2\r\n', c.CancelUpdate("t", ("a1", "b2"))),
    (b"t UID FETCH $ FLAGS\r\n", c.Fetch("t", True, SAVED, (F.FLAGS, F.UID))),
    (b"t MOVE $ Archive\r\n", c.Move("t", False, SAVED, "Archive")),
    # RFC 5256 §3 SORT, RFC 5957 DISPLAYFROM / DISPLAYTO, RFC 5267 §3.2 ESORT's RETURN.
    (b"t SORT (SUBJECT reverse DATE) UTF-8 ALL\r\n",
     c.Sort("t", False, (c.SortKey("SUBJECT"), c.SortKey("DATE", True)), "UTF-8", t.SearchAll())),
    (b"t THREAD references UTF-8 ALL\r\n", c.Thread("t", False, "REFERENCES", "UTF-8", t.SearchAll())),
    (b"t UID THREAD ORDEREDSUBJECT us-ascii 1:5\r\n",
     c.Thread("t", True, "ORDEREDSUBJECT", "US-ASCII", t.SearchSet(S("1:5")))),
    (b"t UID SORT RETURN (count) (displayfrom) us-ascii 1:5\r\n",
     c.Sort("t", True, (c.SortKey("DISPLAYFROM"),), "US-ASCII", t.SearchSet(S("1:5")), ("COUNT",))),
    (b"t FETCH 1 ALL\r\n", c.Fetch("t", False, S("1"), t.FETCH_MACROS["ALL"])),
    (b"t FETCH 1:* fast\r\n", c.Fetch("t", False, S("1:*"), t.FETCH_MACROS["FAST"])),
    (b"t FETCH 2 FULL\r\n", c.Fetch("t", False, S("2"), t.FETCH_MACROS["FULL"])),
    (b"t FETCH 2 BODY\r\n", c.Fetch("t", False, S("2"), (F.BODY,))),
    (  # RFC 8474 §5, RFC 8514 §4.2, RFC 8970 §3
        b"t UID FETCH 1:* (EMAILID threadid SAVEDATE PREVIEW (lazy) PREVIEW)\r\n",
        c.Fetch("t", True, S("1:*"), (F.EMAILID, F.THREADID, F.SAVEDATE, F.PREVIEW_LAZY, F.PREVIEW, F.UID)),
    ),
    (  # RFC 5032 WITHIN, RFC 8474 §6, RFC 8514 §4.3
        b"t SEARCH YOUNGER 3600 NOT OLDER 60 EMAILID M1_a-b THREADID T9 SAVEDSINCE 1-Feb-2026 SAVEDATESUPPORTED\r\n",
        c.Search("t", False, None, t.SearchAnd((
            t.SearchAge(False, 3600), t.SearchNot(t.SearchAge(True, 60)), t.SearchObjectId("EMAILID", "M1_a-b"),
            t.SearchObjectId("THREADID", "T9"), t.SearchDate(t.DateField.SAVED, t.DateOp.SINCE, dt.date(2026, 2, 1)),
            t.SearchSaveDateSupported(),
        ))),
    ),
    (
        b"t FETCH 2:4 (FLAGS INTERNALDATE RFC822.SIZE RFC822 RFC822.HEADER RFC822.TEXT ENVELOPE "
        b"BODYSTRUCTURE UID MODSEQ)\r\n",
        c.Fetch(
            "t",
            False,
            S("2:4"),
            (
                F.FLAGS,
                F.INTERNALDATE,
                F.RFC822_SIZE,
                F.RFC822,
                F.RFC822_HEADER,
                F.RFC822_TEXT,
                F.ENVELOPE,
                F.BODYSTRUCTURE,
                F.UID,
                F.MODSEQ,
            ),
        ),
    ),
    (
        b"t FETCH 1 (BODY[] BODY.PEEK[1.2.3] BODY[HEADER]<0.1024> BODY[1.MIME] BODY[2.TEXT])\r\n",
        c.Fetch(
            "t",
            False,
            S("1"),
            (
                t.FetchBody(t.Section()),
                t.FetchBody(t.Section((1, 2, 3)), peek=True),
                t.FetchBody(t.Section((), t.SectionText.HEADER), (0, 1024)),
                t.FetchBody(t.Section((1,), t.SectionText.MIME)),
                t.FetchBody(t.Section((2,), t.SectionText.TEXT)),
            ),
        ),
    ),
    # RFC 3516 §4.3: BINARY, BINARY.PEEK (with a partial) and BINARY.SIZE, part numbers only.
    (
        b"t FETCH 1 (BINARY[] binary.peek[1.2]<5.10> BINARY.SIZE[3])\r\n",
        c.Fetch("t", False, S("1"), (
            t.FetchBody(t.Section(), binary=True),
            t.FetchBody(t.Section((1, 2)), (5, 10), peek=True, binary=True),
            t.FetchBody(t.Section((3,)), peek=True, binary=True, size=True),
        )),
    ),
    (
        b"t UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From Subject)] BODY[1.HEADER.FIELDS.NOT (X-A)])"
        b" (CHANGEDSINCE 12345)\r\n",
        c.Fetch(
            "t",
            True,
            S("1:*"),
            (
                t.FetchBody(t.Section((), t.SectionText.HEADER_FIELDS, ("FROM", "SUBJECT")), peek=True),
                t.FetchBody(t.Section((1,), t.SectionText.HEADER_FIELDS_NOT, ("X-A",))),
                F.UID,
                F.MODSEQ,
            ),
            12345,
        ),
    ),
    (
        b"t STORE 2:4 +FLAGS (\\Deleted)\r\n",
        c.Store("t", False, S("2:4"), c.StoreMode.ADD, False, ("\\Deleted",)),
    ),
    (
        b"t UID STORE 7 -FLAGS.SILENT \\Seen $Label1\r\n",
        c.Store("t", True, S("7"), c.StoreMode.REMOVE, True, ("\\Seen", "$Label1")),
    ),
    (
        b"t STORE 1,3 (UNCHANGEDSINCE 320162338) FLAGS ()\r\n",
        c.Store("t", False, S("1,3"), c.StoreMode.REPLACE, False, (), 320162338),
    ),
    (b"t COPY 2:4 MEETING\r\n", c.Copy("t", False, S("2:4"), "MEETING")),
    (b"t UID COPY 1:* Archive\r\n", c.Copy("t", True, S("1:*"), "Archive")),
    (b"t MOVE 1 Trash\r\n", c.Move("t", False, S("1"), "Trash")),
    (b"t UID MOVE 42:43 {5}\r\nTrash\r\n", c.Move("t", True, S("42:43"), "Trash")),
    # RFC 7162 §3.2 QRESYNC
    (b"t SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
     c.Select("t", "INBOX", qresync=c.QresyncParams(67890007, 20050715194045000, S("41,43:211,214:541")))),
    (b"t EXAMINE INBOX (CONDSTORE QRESYNC (1 2 1:9 (1,3 1,5)))\r\n",
     c.Examine("t", "INBOX", True, c.QresyncParams(1, 2, S("1:9"), (S("1,3"), S("1,5"))))),
    (b"t UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
     c.Fetch("t", True, S("300:500"), (F.FLAGS, F.UID, F.MODSEQ), 12345, True)),
    # RFC 5465 NOTIFY
    (b"t NOTIFY NONE\r\n", c.Notify("t")),
    (b"t NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge))"
     b" (subtree (Lists {4}\r\nWork) (MessageNew MessageExpunge FlagChange)) (personal (MailboxName))\r\n",
     c.Notify("t", (
         n.EventGroup(n.Filter.SELECTED, frozenset({n.Event.MESSAGE_NEW, n.Event.MESSAGE_EXPUNGE}), (),
                      (F.UID, t.FetchBody(t.Section((), t.SectionText.HEADER), peek=True))),
         n.EventGroup(n.Filter.SUBTREE, frozenset({n.Event.MESSAGE_NEW, n.Event.MESSAGE_EXPUNGE,
                                                   n.Event.FLAG_CHANGE}), ("Lists", "Work")),
         n.EventGroup(n.Filter.PERSONAL, frozenset({n.Event.MAILBOX_NAME})),
     ), status=True, none=False)),
    (b"t NOTIFY SET (mailboxes inbox (SubscriptionChange)) (selected-delayed NONE)\r\n",
     c.Notify("t", (n.EventGroup(n.Filter.MAILBOXES, frozenset({n.Event.SUBSCRIPTION_CHANGE}), ("INBOX",)),
                    n.EventGroup(n.Filter.SELECTED_DELAYED)), none=False)),
]
