"""Issue 15 item 7: request bodies are checked before they are read.

Before, multipart bodies up to 17 MB were parsed and spooled to temporary files before the
session and CSRF checks answered 403. Now, over a raw socket (so the client controls what it
has sent): the headers and the first 64 KiB of an 8 MB upload are sent, then nothing; the
gateway must answer at once, having read no more than the start of the form:

- no session cookie, or an expired one: 403 (patient) / 303 to the login page (admin);
- a live session without the CSRF token before the file: 403;
- a declared length over the route's limit: 413 before anything is read, on an
  authenticated route too; a body without a declared length (chunked): 413;
- every POST form of the templates puts its CSRF token first (what browsers then send first).
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import Site
from tests.web.kit import Account, activate_http, login_http, new_ins, pro_sends, provision

MB = 1 << 20
BOUNDARY = "----hostileboundary7"
ROOT = Path(__file__).resolve().parents[2]


def _multipart_head(fields: list[tuple[str, str]], filename: str = "big.pdf") -> bytes:
    out = b""
    for name, value in fields:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/pdf\r\n\r\n%PDF-").encode()
    return out


def _post_start(port: int, path: str, body_start: bytes, length: int, cookie: str = "",
                content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> tuple[bytes, float]:
    """Send the headers of a ``length``-byte POST and only ``body_start`` of its body, then wait
    for the answer: (the answer's head, seconds it took). The rest is never sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {length}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n").encode()
        start = time.monotonic()
        sock.sendall(head + body_start)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n\r\n", 1)[0], time.monotonic() - start


def _spooled() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).iterdir() if p.is_file()}


def _cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


@pytest.fixture
def patient(site: Site) -> Account:
    """A new patient (a TOTP code is accepted once: each test logs in a patient of its own)."""
    ins = new_ins()
    return activate_http(site.live, ins, provision(site.home, ins))


def _conversation(client: httpx.Client) -> int:
    found = re.search(r'href="/conversations/(\d+)"', client.get("/").text)
    assert found
    return int(found.group(1))


def test_unauthenticated_upload_is_refused_before_its_body_is_read(site: Site) -> None:
    port = site.live.port("http")
    before = _spooled()
    for _ in range(5):  # several hostile uploads: each answered at once
        body = _multipart_head([("csrf", "x" * 40)]) + b"\0" * (64 * 1024)
        head, took = _post_start(port, "/conversations/1/repondre", body, 8 * MB)
        assert head.startswith(b"HTTP/1.1 403 "), head
        assert took < 2.0
        head, took = _post_start(port, "/conversations/1/repondre", body, 8 * MB, cookie="hmg_session=expired-token")
        assert head.startswith(b"HTTP/1.1 403 "), head
    assert not (_spooled() - before)


def test_upload_without_the_token_before_the_file_is_refused_unread(site: Site, patient: Account) -> None:
    port = site.live.port("http")
    pro_sends(site.live, site.world, patient.ins, subject="Pour la réponse")
    with login_http(site.live, patient) as c:
        cid = _conversation(c)
        cookie = _cookie_header(c)
        before = _spooled()
        no_token = _multipart_head([("text", "bonjour")]) + b"\0" * (64 * 1024)
        head, took = _post_start(port, f"/conversations/{cid}/repondre", no_token, 8 * MB, cookie=cookie)
        assert head.startswith(b"HTTP/1.1 403 "), head
        assert took < 2.0
        wrong = _multipart_head([("csrf", "forged-token-value"), ("text", "bonjour")]) + b"\0" * (64 * 1024)
        head, _ = _post_start(port, f"/conversations/{cid}/repondre", wrong, 8 * MB, cookie=cookie)
        assert head.startswith(b"HTTP/1.1 403 "), head
        # the token after a file is not looked for: refused as missing
        page = c.get(f"/conversations/{cid}").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        late = _multipart_head([]) + b"x" * 1000 + (f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
                                                     f"name=\"csrf\"\r\n\r\n{token.group(1)}\r\n").encode()
        head, _ = _post_start(port, f"/conversations/{cid}/repondre", late, 8 * MB, cookie=cookie)
        assert head.startswith(b"HTTP/1.1 403 "), head
        assert not (_spooled() - before)
        # the same session with its token first still replies (the form as the browser sends it)
        r = c.post(f"/conversations/{cid}/repondre", data={"csrf": token.group(1), "text": "Merci"})
        assert r.status_code == 200 and "envoy" in r.text.lower(), r.text[:300]


def test_over_the_route_limit_is_413_before_reading_even_with_a_session(site: Site, patient: Account) -> None:
    port = site.live.port("http")
    with login_http(site.live, patient) as c:
        cookie = _cookie_header(c)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/mon-espace").text)
        assert token
        body = _multipart_head([("csrf", token.group(1))])
        limit = site.live.services.settings.web.max_total_attachment_bytes + 2 * MB
        head, took = _post_start(port, "/conversations/1/repondre", body, limit + 1, cookie=cookie)
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert took < 2.0
        # a form route without uploads has the small default limit (web.max_form_bytes)
        form = f"csrf={token.group(1)}&notify=1".encode()
        head, _ = _post_start(port, "/mon-espace/notifications", form, 200 * 1024, cookie=cookie,
                              content_type="application/x-www-form-urlencoded")
        assert head.startswith(b"HTTP/1.1 413 "), head


def test_chunked_body_without_length_is_refused(site: Site) -> None:
    port = site.live.port("http")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /connexion HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n10000\r\n" + b"a" * 1000)
        answer = sock.recv(65536)
    assert answer.startswith((b"HTTP/1.1 403 ", b"HTTP/1.1 413 ")), answer[:100]


def test_admin_console_checks_session_and_token_before_the_body(site: Site) -> None:
    port = site.live.port("http")
    body = _multipart_head([("csrf", "nope")]) + b"<" * (64 * 1024)
    head, took = _post_start(port, "/admin/domains/import", body, 4 * MB)
    assert head.startswith(b"HTTP/1.1 303 ") and b"/admin/login" in head, head
    assert took < 2.0
    head, _ = _post_start(port, "/admin/domains/import", body, 64 * MB)
    assert head.startswith(b"HTTP/1.1 413 "), head


def test_admin_login_has_the_default_limit(site: Site) -> None:
    port = site.live.port("http")
    head, took = _post_start(port, "/admin/login", b"login_csrf=x&name=", 2 * MB,
                             content_type="application/x-www-form-urlencoded")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert took < 2.0


def test_every_post_form_puts_its_csrf_token_first() -> None:
    templates = list((ROOT / "gateway" / "web").glob("*/templates/*.html"))
    assert templates
    forms = 0
    for path in templates:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", text, re.S | re.I):
            first = re.search(r"<(input|textarea|select|button)\b[^>]*>", match.group(1))
            assert first is not None and 'type="hidden"' in first.group(0) and "csrf" in first.group(0), (
                path.name, first.group(0) if first else None)
            forms += 1
    assert forms >= 20
