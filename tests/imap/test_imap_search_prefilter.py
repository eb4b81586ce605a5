"""The SEARCH BODY / TEXT prefilter says "no" only when the decoded text cannot hold the needle."""

from __future__ import annotations

import base64

from imap.handlers.search import _body_text, cannot_contain

PLAIN = b"Subject: hello\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe Marker is here\r\n"


def test_plain_ascii_without_the_needle_is_ruled_out() -> None:
    assert cannot_contain(PLAIN, "absent")
    assert not cannot_contain(PLAIN, "marker")  # case-insensitive presence: parse and decide
    assert not cannot_contain(PLAIN, "MARKER")


def test_what_can_hide_a_needle_disables_the_prefilter() -> None:
    hidden = base64.b64encode(b"the marker").decode()
    b64 = (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + hidden.encode() + b"\r\n")
    assert "marker" in _body_text(b64).casefold() and not cannot_contain(b64, "marker")
    qp = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nmar=\r\nker\r\n"
    assert "marker" in _body_text(qp).casefold() and not cannot_contain(qp, "marker")
    assert not cannot_contain(b"Subject: =?utf-8?q?mark=65r?=\r\n\r\nx\r\n", "marker")  # RFC 2047
    assert not cannot_contain(b"Content-Type: text/plain; charset=utf-7\r\n\r\n+AG0-arker\r\n", "marker")
    assert not cannot_contain("Content-Type: text/plain; charset=utf-8\r\n\r\nſ\r\n".encode(), "s")  # casefold
    assert not cannot_contain(PLAIN, "is here")  # spaces: folding and joins differ from the octets
    assert not cannot_contain(PLAIN, "")
    assert not cannot_contain(PLAIN, "é")
