"""Both reply catalogues are well formed (RFC 5321 §4.2, RFC 3463 §2, RFC 2034 §3).

* ``routing.reasons.CATALOGUE``: routing outcomes by reason code;
* ``smtp.replies.CATALOGUE``: protocol-level SMTP replies.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

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
# message: the one routing outcome that asks the sender to try again later.
TEMPORARY = {"data.dkim_temperror"}


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
