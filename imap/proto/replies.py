"""The IMAP reply catalogue (DESIGN rule 6): every status response text the server sends.

A :class:`Reply` is a status (RFC 3501 §7.1: ``OK``, ``NO``, ``BAD``, ``BYE``; ``+`` for a
command continuation request, §7.5), a response code (§7.1, RFC 5530 and the extensions
named below) and the human-readable text. The server never builds a status text anywhere
else: handlers return a ``*_COMPLETED`` entry, errors (:mod:`imap.proto.errors`) are made
from an entry, and codes that carry data (``[UIDNEXT 4]``, ``[APPENDUID 1 2]``) get it with
:meth:`Reply.with_arg`. One text has one status and code (a test checks it), texts are
plain words that never carry internal details (DESIGN rule 5).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType


class Code(enum.StrEnum):
    """Response codes (RFC 3501 §7.1; RFC 5530; RFC 4315 UIDPLUS; RFC 7162 CONDSTORE;
    RFC 7889 / RFC 4469 TOOBIG)."""

    ALERT = "ALERT"
    BADCHARSET = "BADCHARSET"
    CAPABILITY = "CAPABILITY"
    PARSE = "PARSE"
    PERMANENTFLAGS = "PERMANENTFLAGS"
    READ_ONLY = "READ-ONLY"
    READ_WRITE = "READ-WRITE"
    TRYCREATE = "TRYCREATE"
    UIDNEXT = "UIDNEXT"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    APPENDUID = "APPENDUID"  # RFC 4315 §3
    COPYUID = "COPYUID"  # RFC 4315 §3
    HIGHESTMODSEQ = "HIGHESTMODSEQ"  # RFC 7162 §3.1.2.1
    MODIFIED = "MODIFIED"  # RFC 7162 §3.1.3
    CLOSED = "CLOSED"  # RFC 7162 §3.2.11, RFC 9051 §7.1
    TOOBIG = "TOOBIG"
    CANNOT = "CANNOT"
    NONEXISTENT = "NONEXISTENT"
    ALREADYEXISTS = "ALREADYEXISTS"
    LIMIT = "LIMIT"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    UNAVAILABLE = "UNAVAILABLE"
    SERVERBUG = "SERVERBUG"
    CLIENTBUG = "CLIENTBUG"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    INUSE = "INUSE"
    OVERQUOTA = "OVERQUOTA"
    EXPUNGEISSUED = "EXPUNGEISSUED"
    BADURL = "BADURL"  # RFC 4469 §6
    UNKNOWN_CTE = "UNKNOWN-CTE"  # RFC 3516 §4.3
    NOUPDATE = "NOUPDATE"  # RFC 5267 §4.2
    BADEVENT = "BADEVENT"  # RFC 5465 §5.4
    COMPRESSIONACTIVE = "COMPRESSIONACTIVE"  # RFC 4978 §3
    MAILBOXID = "MAILBOXID"  # RFC 8474 §4.1
    NOPERM = "NOPERM"  # RFC 5530 §3


class Status(enum.StrEnum):
    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    BYE = "BYE"
    CONTINUE = "+"  # RFC 3501 §7.5 command continuation request


def clean(text: str) -> str:
    """Printable ASCII only, no CR/LF (RFC 3501 §9 ``text``): a value can never inject a line."""
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    return cleaned.strip() or "Error"


@dataclass(frozen=True, slots=True)
class Reply:
    status: Status
    text: str
    code: Code | None = None
    code_arg: str | None = None  # the data of a code, given at use (:meth:`with_arg`)

    def with_arg(self, arg: str | int) -> Reply:
        """This reply with the data of its response code, e.g. ``[UIDNEXT 4]``."""
        return replace(self, code_arg=str(arg))

    def expunge_issued(self) -> Reply:
        """This reply with ``[EXPUNGEISSUED]``: messages another session expunged, still numbered
        in this one, were left out (RFC 5530 §3; RFC 2180 §4.1)."""
        return replace(self, code=Code.EXPUNGEISSUED, code_arg=None)

    def response_text(self) -> str:
        """``STATUS [CODE arg] text`` (no tag, no CRLF)."""
        if self.code is None:
            return f"{self.status.value} {self.text}"
        arg = f" {clean(self.code_arg)}" if self.code_arg else ""
        return f"{self.status.value} [{self.code.value}{arg}] {self.text}"

    def line(self, tag: str | None = None) -> bytes:
        """The response line, CRLF-terminated: tagged, untagged (``*``) or ``+ text``."""
        if self.status is Status.CONTINUE:
            return f"+ {self.text}\r\n".encode("ascii")
        return f"{tag or '*'} {self.response_text()}\r\n".encode("ascii")


_OK, _NO, _BAD, _BYE, _CONTINUE = Status.OK, Status.NO, Status.BAD, Status.BYE, Status.CONTINUE

# --- greeting, continuation requests, closing (RFC 3501 §7.1.1, §7.1.5, §7.5) -----------------
GREETING = Reply(_OK, "IMAP4rev1 service ready", Code.CAPABILITY)
READY_FOR_LITERAL = Reply(_CONTINUE, "Ready for literal data")
IDLING = Reply(_CONTINUE, "idling")  # RFC 2177 §3
LOGGING_OUT = Reply(_BYE, "Logging out")
TOO_MANY_ERRORS = Reply(_BYE, "Too many protocol errors")
AUTOLOGOUT = Reply(_BYE, "Autologout; idle for too long")  # RFC 3501 §5.4
# a session opened with an access token, its grace time after the token's expiry over (issue 19)
TOKEN_EXPIRED = Reply(_BYE, "Access token expired; sign in again")
# the account was suspended or removed while this session was open (RFC 9051 §7.1.5)
ACCOUNT_DISABLED = Reply(_BYE, "Account disabled by the administrator; closing connection")
LOGIN_TIMEOUT = Reply(_BYE, "Login timeout, closing connection")
ADDRESS_FULL = Reply(_BYE, "Too many connections from your address, try again later", Code.UNAVAILABLE)
LISTENER_FULL = Reply(_BYE, "Too many connections, try again later", Code.UNAVAILABLE)

# --- tagged OK of each command ----------------------------------------------------------------
CAPABILITY_COMPLETED = Reply(_OK, "CAPABILITY completed")
NOOP_COMPLETED = Reply(_OK, "NOOP completed")
LOGOUT_COMPLETED = Reply(_OK, "LOGOUT completed")
ID_COMPLETED = Reply(_OK, "ID completed")
BEGIN_TLS = Reply(_OK, "Begin TLS negotiation now")
LOGGED_IN = Reply(_OK, "Logged in", Code.CAPABILITY)
SELECT_COMPLETED = Reply(_OK, "SELECT completed", Code.READ_WRITE)
SELECT_READ_ONLY = Reply(_OK, "SELECT completed, read-only mailbox", Code.READ_ONLY)
EXAMINE_COMPLETED = Reply(_OK, "EXAMINE completed", Code.READ_ONLY)
CREATE_COMPLETED = Reply(_OK, "CREATE completed", Code.MAILBOXID)  # RFC 8474 §4.1: [MAILBOXID (id)]
DELETE_COMPLETED = Reply(_OK, "DELETE completed")
RENAME_COMPLETED = Reply(_OK, "RENAME completed")
SUBSCRIBE_COMPLETED = Reply(_OK, "SUBSCRIBE completed")
UNSUBSCRIBE_COMPLETED = Reply(_OK, "UNSUBSCRIBE completed")
LIST_COMPLETED = Reply(_OK, "LIST completed")
LSUB_COMPLETED = Reply(_OK, "LSUB completed")
STATUS_COMPLETED = Reply(_OK, "STATUS completed")
APPEND_COMPLETED = Reply(_OK, "APPEND completed", Code.APPENDUID)
ENABLE_COMPLETED = Reply(_OK, "ENABLE completed")
NAMESPACE_COMPLETED = Reply(_OK, "NAMESPACE completed")
IDLE_TERMINATED = Reply(_OK, "IDLE terminated")
CHECK_COMPLETED = Reply(_OK, "CHECK completed")
CLOSE_COMPLETED = Reply(_OK, "CLOSE completed")
UNSELECT_COMPLETED = Reply(_OK, "UNSELECT completed")
EXPUNGE_COMPLETED = Reply(_OK, "EXPUNGE completed")
EXPUNGED_MODSEQ = Reply(_OK, "Expunged", Code.HIGHESTMODSEQ)  # RFC 7162 §3.2.10 with QRESYNC
SEARCH_COMPLETED = Reply(_OK, "SEARCH completed")
CANCELUPDATE_COMPLETED = Reply(_OK, "CANCELUPDATE completed")  # RFC 5267 §4.3
SORT_COMPLETED = Reply(_OK, "SORT completed")
THREAD_COMPLETED = Reply(_OK, "THREAD completed")
FETCH_COMPLETED = Reply(_OK, "FETCH completed")
STORE_COMPLETED = Reply(_OK, "STORE completed")
STORE_MODIFIED = Reply(_OK, "Some messages were modified", Code.MODIFIED)  # RFC 7162 §3.1.3
COPY_COMPLETED = Reply(_OK, "COPY completed", Code.COPYUID)
COPY_NOTHING = Reply(_OK, "COPY completed, no messages")  # RFC 4315 §3: no COPYUID for none
MOVE_COMPLETED = Reply(_OK, "MOVE completed")
NOTIFY_COMPLETED = Reply(_OK, "NOTIFY completed")  # RFC 5465
COMPRESS_COMPLETED = Reply(_OK, "DEFLATE active")  # RFC 4978 §3
GETQUOTA_COMPLETED = Reply(_OK, "GETQUOTA completed")  # RFC 9208 §4.1.1
GETQUOTAROOT_COMPLETED = Reply(_OK, "GETQUOTAROOT completed")  # RFC 9208 §4.1.2

# --- untagged OK with data (SELECT, RFC 3501 §6.3.1; MOVE, RFC 6851 §4.3) ---------------------
FIRST_UNSEEN = Reply(_OK, "First unseen", Code.UNSEEN)
PERMANENT_FLAGS = Reply(_OK, "Limited", Code.PERMANENTFLAGS)
UIDS_VALID = Reply(_OK, "UIDs valid", Code.UIDVALIDITY)
PREDICTED_UIDNEXT = Reply(_OK, "Predicted next UID", Code.UIDNEXT)
HIGHEST_MODSEQ = Reply(_OK, "Highest", Code.HIGHESTMODSEQ)
MOVED = Reply(_OK, "Moved", Code.COPYUID)
# RFC 5267 §4.2: an UPDATE the server will not keep (``[NOUPDATE "tag"]``)
NO_UPDATES = Reply(_OK, "Too many searches with UPDATE; no updates for this one", Code.NOUPDATE)
# RFC 7162 §3.2.11 (QRESYNC), RFC 9051 §7.1 (IMAP4rev2)
PREVIOUS_CLOSED = Reply(_OK, "Previous mailbox closed", Code.CLOSED)
MAILBOX_ID = Reply(_OK, "Mailbox ID", Code.MAILBOXID)  # RFC 8474 §4.1, [MAILBOXID (id)]

# --- state and login (RFC 3501 §6.2, RFC 5530) -------------------------------------------------
UNKNOWN_COMMAND = Reply(_BAD, "Unknown command")
NOT_VALID_IN_STATE = Reply(_BAD, "Command not valid in this state")
NOT_AUTHENTICATED = Reply(_BAD, "Not authenticated")
NO_MAILBOX_SELECTED = Reply(_BAD, "No mailbox selected")
TLS_ACTIVE = Reply(_BAD, "TLS is already active")
STARTTLS_UNAVAILABLE = Reply(_NO, "STARTTLS not available here")
LOGIN_DISABLED = Reply(_NO, "Use STARTTLS before logging in", Code.PRIVACYREQUIRED)  # RFC 3501 §6.2.3
# [auth] password_login = false: LOGINDISABLED in CAPABILITY (RFC 3501 §6.2.3)
PASSWORDS_DISABLED = Reply(_NO, "Passwords are not accepted here: use AUTHENTICATE", Code.CANNOT)
AUTHENTICATION_FAILED = Reply(_NO, "Authentication failed", Code.AUTHENTICATIONFAILED)
# RFC 5530 §3 UNAVAILABLE: refused before the password is checked, after repeated failures (SPEC §6)
LOGIN_THROTTLED = Reply(_NO, "Too many failed logins; try again later", Code.UNAVAILABLE)
UNSUPPORTED_MECHANISM = Reply(_NO, "Unsupported authentication mechanism")
INVALID_PLAIN = Reply(_BAD, "Invalid PLAIN response")  # RFC 4616
INVALID_BEARER = Reply(_BAD, "Invalid OAUTHBEARER or XOAUTH2 response")  # RFC 7628 §3.1
INVALID_EXTERNAL = Reply(_BAD, "Invalid EXTERNAL response")  # RFC 4422 appendix A: a UTF-8 authzid
# RFC 5530 §3 UNAVAILABLE: the identity provider could not be asked; the token was not judged
TOKEN_CHECK_UNAVAILABLE = Reply(_NO, "Sign-in temporarily unavailable; try again later", Code.UNAVAILABLE)
INVALID_BASE64 = Reply(_BAD, "Invalid base64")
AUTHENTICATION_CANCELLED = Reply(_BAD, "Authentication cancelled")  # RFC 3501 §6.2.2
EXPECTED_DONE = Reply(_BAD, "Expected DONE")  # RFC 2177 §3

# --- mailboxes and messages -------------------------------------------------------------------
NO_SUCH_MAILBOX = Reply(_NO, "No such mailbox", Code.NONEXISTENT)
TRYCREATE = Reply(_NO, "Destination mailbox does not exist", Code.TRYCREATE)  # RFC 3501 §6.3.11
MAILBOX_EXISTS = Reply(_NO, "Mailbox already exists", Code.ALREADYEXISTS)
MAILBOX_NAME_REFUSED = Reply(_NO, "Invalid mailbox name", Code.CANNOT)
INVALID_MAILBOX_ENCODING = Reply(_NO, "Mailbox name is not valid modified UTF-7")  # RFC 3501 §5.1.3
INBOX_NOT_DELETABLE = Reply(_NO, "INBOX cannot be deleted", Code.CANNOT)  # RFC 3501 §6.3.4
FOLDER_INTO_ITSELF = Reply(_NO, "Cannot move a folder into itself", Code.CANNOT)  # RENAME a to a/b
UNSUPPORTED_SPECIAL_USE = Reply(_NO, "Unsupported special-use attribute", Code.CANNOT)  # RFC 6154 §3
MAILBOX_READ_ONLY = Reply(_NO, "Mailbox is read-only", Code.READ_ONLY)
OVER_QUOTA = Reply(_NO, "Quota exceeded", Code.OVERQUOTA)  # RFC 9208 §4.3
NO_SUCH_QUOTA_ROOT = Reply(_NO, "No such quota root")  # RFC 9208 §4.1.1
# RFC 9208 §4.1.3: SETQUOTA may be refused; quotas are set by the gateway's admins.
QUOTA_SET_BY_ADMINS = Reply(_NO, "Quotas are set by the administrators", Code.NOPERM)
MESSAGE_TOO_LARGE = Reply(_NO, "Message too large", Code.TOOBIG)  # RFC 7889
EIGHT_BIT_HEADER = Reply(_NO, "8-bit header fields need ENABLE UTF8=ACCEPT", Code.CANNOT)  # RFC 6855 §4
NUL_IN_MESSAGE = Reply(_NO, "NUL character in message")  # RFC 3501 §4.3
UNKNOWN_CTE = Reply(_NO, "Unknown content-transfer-encoding", Code.UNKNOWN_CTE)  # RFC 3516 §4.3
INVALID_CTE_DATA = Reply(_NO, "Content cannot be decoded", Code.PARSE)  # RFC 3516 §4.3
BAD_URL = Reply(_NO, "Invalid or unknown CATENATE URL", Code.BADURL)  # RFC 4469 §6, [BADURL url]
UNSUPPORTED_CHARSET = Reply(_NO, "Unsupported charset", Code.BADCHARSET)  # RFC 3501 §6.4.4
MESSAGE_VANISHED = Reply(_BAD, "Message vanished")
UNKNOWN_SEARCH_CONTEXT = Reply(_NO, "No SEARCH with UPDATE has that tag")  # RFC 5267 §4.3
COMPRESSION_ACTIVE = Reply(_NO, "Compression is already active", Code.COMPRESSIONACTIVE)  # RFC 4978 §3
UNKNOWN_COMPRESSION = Reply(_BAD, "Unknown compression mechanism")  # RFC 4978 §3

# --- server side ------------------------------------------------------------------------------
SERVER_BUSY = Reply(_NO, "Server busy, try again later", Code.LIMIT)  # RFC 5530 §3
SERVER_BUG = Reply(_NO, "Internal error, try again", Code.SERVERBUG)
CONTINUATION_FAILED = Reply(_NO, "Internal error", Code.SERVERBUG)

# --- framing limits (RFC 7888 §4, RFC 7889; DESIGN "literal-size DoS before login") -----------
LINE_TOO_LONG = Reply(_BAD, "Line too long")
COMMAND_TOO_LONG = Reply(_BAD, "Command too long", Code.TOOBIG)
LITERAL_TOO_LARGE = Reply(_BAD, "Literal too large", Code.TOOBIG)
NON_SYNC_LITERAL_REFUSED = Reply(_BAD, "Non-synchronizing literals are not supported")

# --- syntax (RFC 3501 §9), a tagged BAD ---------------------------------------------------------
SYNTAX_ERROR = Reply(_BAD, "Syntax error")
TRAILING_CHARACTERS = Reply(_BAD, "Unexpected characters at end of command")
INVALID_NUMBER = Reply(_BAD, "Invalid number")
UNTERMINATED_QUOTED = Reply(_BAD, "Unterminated quoted string")
INVALID_ESCAPE = Reply(_BAD, "Invalid escape in quoted string")
INVALID_QUOTED_CHARACTER = Reply(_BAD, "Invalid character in quoted string")
TRUNCATED_LITERAL = Reply(_BAD, "Truncated literal")
NUL_IN_LITERAL = Reply(_BAD, "NUL in literal")
INVALID_UTF8 = Reply(_BAD, "Invalid UTF-8")
INVALID_SEQUENCE_SET = Reply(_BAD, "Invalid sequence set")
INVALID_SEQUENCE_NUMBER = Reply(_BAD, "Invalid message sequence number")
INVALID_DATE = Reply(_BAD, "Invalid date")
INVALID_DATE_TIME = Reply(_BAD, "Invalid date-time")
TOO_MANY_ID_PARAMETERS = Reply(_BAD, "Too many ID parameters")  # RFC 2971 §3.3
UNKNOWN_SELECT_PARAMETER = Reply(_BAD, "Unknown SELECT parameter")
UNKNOWN_CREATE_PARAMETER = Reply(_BAD, "Unknown CREATE parameter")
UNKNOWN_STATUS_ITEM = Reply(_BAD, "Unknown STATUS item")
EMPTY_STATUS_ITEMS = Reply(_BAD, "Empty STATUS item list")
APPEND_NEEDS_LITERAL = Reply(_BAD, "APPEND needs a literal")
ENABLE_NEEDS_CAPABILITY = Reply(_BAD, "ENABLE needs a capability")
INVALID_SECTION_PART = Reply(_BAD, "Invalid section part")
INVALID_SECTION = Reply(_BAD, "Invalid section")
MIME_NEEDS_PART = Reply(_BAD, "MIME needs a part number")
EMPTY_HEADER_LIST = Reply(_BAD, "Empty header list")
UNKNOWN_FETCH_ITEM = Reply(_BAD, "Unknown FETCH item")
UNKNOWN_MODIFIER = Reply(_BAD, "Unknown modifier")
INVALID_STORE_ITEM = Reply(_BAD, "Invalid STORE item")
SEARCH_TOO_DEEP = Reply(_BAD, "Search too deeply nested")
UNKNOWN_SEARCH_KEY = Reply(_BAD, "Unknown search key")
CHARSET_AFTER_UTF8 = Reply(_BAD, "No SEARCH CHARSET once UTF8=ACCEPT is enabled")  # RFC 6855 §3
UNKNOWN_SEARCH_RETURN_OPTION = Reply(_BAD, "Unknown SEARCH return option")  # RFC 4731 §3.1
INVALID_PARTIAL_RANGE = Reply(_BAD, "Invalid PARTIAL range")  # RFC 5267 §4.4
PARTIAL_WITH_ALL = Reply(_BAD, "PARTIAL conflicts with ALL")  # RFC 5267 §4.4
UNKNOWN_SORT_KEY = Reply(_BAD, "Unknown SORT key")  # RFC 5256 §3
UNKNOWN_THREAD_ALGORITHM = Reply(_BAD, "Unknown THREAD algorithm")  # RFC 5256 §3
UNKNOWN_LIST_OPTION = Reply(_BAD, "Unknown or incomplete LIST options")  # RFC 5258 §3
INVALID_MODSEQ_ENTRY_TYPE = Reply(_BAD, "Invalid MODSEQ entry type")  # RFC 7162 §3.1.5
QRESYNC_NOT_ENABLED = Reply(_BAD, "QRESYNC is not enabled")  # RFC 7162 §3.2.5, §3.2.6
VANISHED_NEEDS_CHANGEDSINCE = Reply(_BAD, "VANISHED needs CHANGEDSINCE in UID FETCH")  # RFC 7162 §3.2.6
INVALID_SEQ_MATCH_DATA = Reply(_BAD, "Invalid sequence match data")  # RFC 7162 §3.2.5
UNKNOWN_NOTIFY_FILTER = Reply(_BAD, "Unknown or repeated NOTIFY filter")  # RFC 5465 §6
INVALID_NOTIFY_EVENTS = Reply(_BAD, "Invalid NOTIFY events")  # RFC 5465 §5
UNSUPPORTED_EVENT = Reply(_NO, "Unsupported NOTIFY event", Code.BADEVENT)  # RFC 5465 §5.4


_ALL: dict[str, Reply] = {k: v for k, v in dict(globals()).items() if isinstance(v, Reply)}

#: Every status response of the server by its constant name.
CATALOGUE: Mapping[str, Reply] = MappingProxyType(_ALL)
