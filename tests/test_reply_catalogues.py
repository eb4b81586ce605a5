"""The reply catalogues are well formed (RFC 5321 §4.2, RFC 3463 §2, RFC 2034 §3; RFC 3501 §7.1).

* ``routing.reasons.CATALOGUE``: routing outcomes by reason code;
* ``smtp.replies.CATALOGUE``: protocol-level SMTP replies;
* ``imap.proto.replies.CATALOGUE``: every IMAP status response; each entry is used by the
  server and the imap package writes no status text of its own.
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from imap.proto import replies as imap_replies
from routing import reasons
from routing.address import Address
from routing.decide import verdict
from smtp import replies

_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_REASON_RE = re.compile(r"^(mail|rcpt|data)\.[a-z][a-z0-9_]*$")
_PLACEHOLDER_RE = re.compile(r"\{(address|detail)\}")
# RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126)
_TEXT_CHARS = set(string.printable) - set("\r\n\x0b\x0c")
_INTERNALS = (
    "traceback",
    "exception",
    "error:",
    "sqlalchemy",
    "sqlite",
    "postgres",
    "psycopg",
    "stdnum",
    "none",
    "null",
    "errno",
    "/home/",
    "/var/",
    ".py",
    "0x",
    "assert",
    "keyerror",
    "valueerror",
)


def _check_text(text: str) -> None:
    assert text and text == text.strip(), text
    assert set(text) <= _TEXT_CHARS, text
    assert len(text) <= 200
    lowered = text.lower()
    for word in _INTERNALS:
        assert word not in lowered, (word, text)


def _check_codes(code: int, enhanced: str) -> None:
    assert 200 <= code <= 599, code
    match = _ENHANCED_RE.match(enhanced)
    assert match, enhanced
    # RFC 3463 §2: the class digit of the enhanced code is the first digit of the reply code
    assert int(match.group(1)) == code // 100, (code, enhanced)
    assert code // 100 != 3


ROUTING = sorted(reasons.CATALOGUE.values(), key=lambda o: o.reason)


@pytest.mark.parametrize("outcome", ROUTING, ids=[o.reason for o in ROUTING])
def test_routing_outcome_well_formed(outcome: reasons.Outcome) -> None:
    assert _REASON_RE.match(outcome.reason), outcome.reason
    _check_codes(outcome.code, outcome.enhanced)
    assert outcome.accept == (outcome.code // 100 == 2)
    text = _PLACEHOLDER_RE.sub("X", outcome.text)
    assert "{" not in text and "}" not in text
    _check_text(text)


def test_routing_reason_codes_unique() -> None:
    assert len(reasons.CATALOGUE) == reasons.ENTRY_COUNT
    assert all(key == o.reason for key, o in reasons.CATALOGUE.items())


# RFC 6376 §6.1.2: a DKIM key that does not answer now is a TEMPFAIL, not a verdict on the
# message: the one routing outcome that asks the sender to try again later. RFC 5321 §3.8: a
# submission session whose account was suspended or removed since AUTH is closed with 421.
TEMPORARY = {"data.dkim_temperror", "mail.account_disabled"}


def test_routing_refusals_are_permanent() -> None:
    # SPEC §3/§5: refusals are permanent and explicit; 530 asks the client to act first.
    for o in ROUTING:
        if not o.accept:
            assert o.code // 100 == (4 if o.reason in TEMPORARY else 5), o.reason


def test_routing_templates_fill_in() -> None:
    address = Address("1" * 15, "patients.example")
    for o in ROUTING:
        v = verdict(o, address=address, detail="invalid INS (check key)")
        assert "{" not in v.line()
        _check_text(v.text)


SMTP = sorted(replies.CATALOGUE.items())
# RFC 2034 §3: no enhanced code on the greeting and EHLO replies; 3yz has none either.
_NO_ENHANCED = {"GREETING", "EHLO_OK", "START_DATA"}


@pytest.mark.parametrize(("name", "reply"), SMTP, ids=[name for name, _ in SMTP])
def test_smtp_reply_well_formed(name: str, reply: replies.Reply) -> None:
    assert name.isupper()
    if name in _NO_ENHANCED:
        assert reply.enhanced == ""
        assert reply.code in (220, 250, 354)
    else:
        _check_codes(reply.code, reply.enhanced)
    _check_text(reply.text)
    line = reply.line()
    assert line.startswith(f"{reply.code} ")
    assert "\r" not in line and "\n" not in line


def test_smtp_reply_lines_unique() -> None:
    lines = [reply.line() for _, reply in SMTP]
    assert len(lines) == len(set(lines))


def test_no_text_shared_with_a_different_code_across_catalogues() -> None:
    """The same words never carry two different codes (one meaning, one reply)."""
    by_text: dict[str, set[tuple[int, str]]] = {}
    for o in ROUTING:
        by_text.setdefault(o.text, set()).add((o.code, o.enhanced))
    for _, r in SMTP:
        by_text.setdefault(r.text, set()).add((r.code, r.enhanced))
    clashes = {text: codes for text, codes in by_text.items() if len(codes) > 1}
    assert clashes == {}


SMTP_SOURCES = Path(__file__).resolve().parents[1] / "smtp"


@pytest.mark.parametrize("name", [name for name, _ in SMTP])
def test_every_smtp_reply_has_a_use(name: str) -> None:
    """No dead entries: each is sent by the smtp package (the wire texts themselves are pinned by
    the transcripts in tests/smtp, which compare whole reply lines)."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in SMTP_SOURCES.glob("*.py")}
    catalogue = sources.pop("replies.py")
    used_elsewhere = any(re.search(rf"\breplies\.{name}\b", text) for text in sources.values())
    used_in_a_builder = len(re.findall(rf"\b{name}\b", catalogue)) > 1  # greeting(), ehlo(), stored()
    assert used_elsewhere or used_in_a_builder, f"{name} is never sent"


def test_built_lines() -> None:
    assert replies.greeting("mx.test") == b"220 mx.test ESMTP service ready\r\n"
    assert replies.ehlo("mx.test", []) == b"250 mx.test hello\r\n"
    assert replies.ehlo("mx.test", ["PIPELINING", "DSN"]) == b"250-mx.test hello\r\n250-PIPELINING\r\n250 DSN\r\n"
    assert replies.challenge(b"") == b"334 \r\n"
    assert replies.challenge(b"Username:") == b"334 VXNlcm5hbWU6\r\n"


def test_stored_with_id_is_sanitised() -> None:
    assert replies.stored("Q1a2-b3").line() == "250 2.0.0 message accepted for delivery (id Q1a2-b3)"
    assert replies.stored("x\r\n250 fake").line() == "250 2.0.0 message accepted for delivery (id x250fake)"
    assert replies.stored("\r\n") == replies.STORED


def test_format_reply_never_emits_line_breaks() -> None:
    assert replies.format_reply(replies.Reply(550, "5.7.1", "a\r\nb")) == "550 5.7.1 a b"
    assert replies.format_reply(verdict(reasons.RCPT_UNTRUSTED_DOMAIN)) == (
        "550 5.7.1 recipient domain is not in the trust space"
    )


# --- IMAP: imap.proto.replies.CATALOGUE (RFC 3501 §7.1, §7.5, §9 resp-text) -------------------
IMAP = sorted(imap_replies.CATALOGUE.items())
IMAP_ROOT = Path(__file__).resolve().parents[1]
# Not production code: the catalogue itself, and the test support of the imap package.
_NOT_PRODUCTION = {IMAP_ROOT / "imap" / "proto" / "replies.py", IMAP_ROOT / "imap" / "testing.py"}
_PRODUCTION = [
    p for top in ("imap", "gateway") for p in sorted((IMAP_ROOT / top).rglob("*.py")) if p not in _NOT_PRODUCTION
]


@pytest.mark.parametrize(("name", "reply"), IMAP, ids=[name for name, _ in IMAP])
def test_imap_reply_well_formed(name: str, reply: imap_replies.Reply) -> None:
    assert name.isupper()
    _check_text(reply.text)
    assert not reply.text.startswith("[")  # RFC 3501 §9: resp-text = ["[" resp-text-code "]" SP] text
    assert reply.code_arg is None  # the data of a code is given where the reply is sent
    if reply.status is imap_replies.Status.CONTINUE:
        assert reply.code is None
        assert reply.line("a1") == f"+ {reply.text}\r\n".encode()
    else:
        assert reply.line("a1").startswith(f"a1 {reply.status.value} ".encode())
        assert reply.line() == b"* " + reply.line("a1")[3:]
    assert reply.line().count(b"\r\n") == 1 and reply.line().endswith(b"\r\n")


def test_imap_no_text_shared_by_two_different_codes() -> None:
    """One meaning, one reply: a text always has the same status and response code."""
    by_text: dict[str, set[tuple[str, str | None]]] = {}
    for _, r in IMAP:
        by_text.setdefault(r.text, set()).add((r.status.value, r.code and r.code.value))
    assert {text: codes for text, codes in by_text.items() if len(codes) > 1} == {}
    assert len({(r.status, r.code, r.text) for _, r in IMAP}) == len(IMAP), "one reply under two names"


def _catalogue_names_used(path: Path) -> set[str]:
    """Catalogue names a module reads: ``replies.NAME`` or ``from imap.proto.replies import NAME``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = {"imap.proto.replies"}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "imap.proto":
            aliases |= {a.asname or a.name for a in node.names if a.name == "replies"}
        elif isinstance(node, ast.ImportFrom) and node.module == "imap.proto.replies":
            names |= {a.name for a in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) in aliases:
            names.add(node.attr)
    return names


def test_every_imap_catalogue_entry_is_used_in_production_code() -> None:
    used = set().union(*(_catalogue_names_used(p) for p in _PRODUCTION))
    assert sorted(set(imap_replies.CATALOGUE) - used) == []


# Calls whose first argument is the text of a status response.
_TEXT_TAKERS = {"ImapError", "CommandFailed", "BadCommand", "ProtocolLimit", "Bye", "AuthenticationFailed",
                "MailboxNotFound", "MailboxExists", "OverQuota", "Reply", "error"}
_STATUS_WORDS = ("OK", "NO", "BAD", "BYE", "PREAUTH")


def _inline_texts(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        first = node.args[0]
        is_text = isinstance(first, ast.JoinedStr) or (isinstance(first, ast.Constant) and isinstance(first.value, str))
        if func in _TEXT_TAKERS and is_text:
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:80]}")
        elif func == "untagged" and is_text and ast.unparse(first).strip("'\"f").startswith(_STATUS_WORDS):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)[:80]}")
    return found


def test_imap_sends_no_status_text_of_its_own() -> None:
    """Every status response of the imap package comes from the catalogue (DESIGN rule 6)."""
    offenders = [hit for p in _PRODUCTION if p.is_relative_to(IMAP_ROOT / "imap") for hit in _inline_texts(p)]
    assert offenders == []


# The gateway's side of IMAP: the backend and the store functions it calls raise IMAP errors too.
_IMAP_BACKEND = [p for p in _PRODUCTION if p.is_relative_to(IMAP_ROOT / "gateway")
                 and re.search(r"^from imap\.proto(\.errors| import errors)", p.read_text(encoding="utf-8"), re.M)]


def test_the_gateway_sends_no_imap_status_text_of_its_own() -> None:
    """gateway/imap_adapter and the mail store raise catalogue entries, never a text of their own."""
    assert {p.parent.name for p in _IMAP_BACKEND} >= {"imap_adapter", "mailstore"}
    assert [hit for p in _IMAP_BACKEND for hit in _inline_texts(p)] == []


def test_the_inline_text_check_sees_inline_texts(tmp_path: Path) -> None:
    module = tmp_path / "handler.py"
    module.write_text('raise CommandFailed("Nope", code=Code.CANNOT)\nraise reader.error(f"bad {x}")\n'
                      'send(encoder.untagged(f"OK [UIDNEXT {n}] Predicted"))\nsend(encoder.untagged(b"3 EXISTS"))\n')
    assert [hit.split()[0] for hit in _inline_texts(module)] == ["handler.py:1", "handler.py:2", "handler.py:3"]
