"""Security properties of the patient inbox, over plain HTTP (httpx): CSRF, isolation between
patients, HTML sanitising, cookie flags, headers, and the audit of every request."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from gateway.store.models import AuditEntry, Message, WebSession
from gateway.testing.audit import opened_entries
from tests.web.conftest import Site
from tests.web.kit import (
    Account,
    activate_http,
    base_url,
    csrf_of,
    login_http,
    new_ins,
    pro_sends,
    provision,
    totp_now,
)

EVIL_HTML = (
    '<html><body><p onclick="steal()" onmouseover="steal()">Résultat <b>normal</b></p>'
    "<script>document.title='pwned'</script>"
    '<img src="https://tracker.example/pixel.gif" alt="pixel">'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">'
    '<a href="javascript:alert(1)">lien piégé</a><a href="https://www.ameli.fr/">ameli</a>'
    '<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input name="x"></form>'
    '<style>body{background:url(https://tracker.example/bg)}</style>'
    '<svg onload="steal()"><circle r="1"/></svg></body></html>'
)


def fresh(site: Site) -> Account:
    """A newly activated patient (a TOTP code is accepted once: each test logs in a new patient)."""
    ins = new_ins()
    return activate_http(site.live, ins, provision(site.home, ins))


@pytest.fixture
def two(site: Site) -> tuple[Account, Account]:
    return fresh(site), fresh(site)


def _message_ids(site: Site, account: Account) -> list[int]:
    from gateway.store.models import Folder, Patient

    with site.live.services.db.read() as s:
        mailbox = s.execute(select(Patient.mailbox_id).where(Patient.id == account.patient_id)).scalar_one()
        return list(s.execute(select(Message.id)
                              .join(Folder, (Folder.mailbox_id == Message.mailbox_id)
                                    & (Folder.id == Message.folder_id))
                              .where(Folder.mailbox_id == mailbox).order_by(Message.id)).scalars())


def test_security_headers_and_cookie_flags(site: Site, two: tuple[Account, Account]) -> None:
    a = fresh(site)
    with httpx.Client(base_url=base_url(site.live)) as c:
        r = c.get("/connexion")
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in r.headers  # plain HTTP: never HSTS (RFC 6797 §7.2)
        assert "<script" not in r.text and "style=" not in r.text
        r = c.post("/connexion", data={"ins": a.ins, "password": "Une phrase de passe bien longue 42",
                                       "code": totp_now(a.secret, ahead=1), "csrf": csrf_of(r.text)})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("hmg_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
        assert "Secure" not in cookie  # not on TLS here; set on HTTPS (test_secure_cookie_on_https)
        inbox = c.get("/")
        assert inbox.status_code == 200 and inbox.headers["cache-control"] == "no-store"


def test_secure_cookie_and_hsts_on_https(site: Site) -> None:
    """Behind TLS (scheme https) the cookie is __Host- and Secure, and HSTS is sent."""
    from starlette.testclient import TestClient

    from gateway.web.app import create_app

    with TestClient(create_app(site.live.services, site.live.gateway.mail), base_url="https://testserver") as c:
        r = c.get("/connexion")
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-hmg_csrf=") and "Secure" in cookie and "HttpOnly" in cookie


def test_cross_site_post_without_token_is_refused(site: Site, two: tuple[Account, Account]) -> None:
    a, _ = two
    pro_sends(site.live, site.world, a.ins, subject="Pour la corbeille")
    target = _message_ids(site, a)[-1]
    with login_http(site.live, a) as c:
        # a form on another site posting with the victim's cookie: no token
        r = c.post(f"/messages/{target}/corbeille", data={})
        assert r.status_code == 403
        # a forged token, or a real one from a cross-site context, are refused too
        r = c.post(f"/messages/{target}/corbeille", data={"csrf": "forged"})
        assert r.status_code == 403
        token = csrf_of(c.get("/").text)
        r = c.post(f"/messages/{target}/corbeille", data={"csrf": token},
                   headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        assert target in _message_ids(site, a)  # nothing moved
        r = c.post(f"/messages/{target}/corbeille", data={"csrf": token})
        assert r.status_code == 200 and target not in _message_ids(site, a)  # the real form works
        # login form too: no token, no login
        with httpx.Client(base_url=base_url(site.live)) as anon:
            r = anon.post("/connexion", data={"ins": a.ins, "password": "x", "code": "123456"})
            assert r.status_code == 403


def test_other_patients_message_is_not_found(site: Site, two: tuple[Account, Account]) -> None:
    a, b = two
    pro_sends(site.live, site.world, b.ins, subject="Confidentiel pour B")
    theirs = _message_ids(site, b)[-1]
    with login_http(site.live, a) as c:
        for path in (f"/messages/{theirs}", f"/messages/{theirs}/pieces/0"):
            r = c.get(path)
            assert r.status_code == 404 and "Confidentiel" not in r.text
        token = csrf_of(c.get("/").text)
        assert c.post(f"/messages/{theirs}/corbeille", data={"csrf": token}).status_code == 404
        assert c.post(f"/messages/{theirs}/supprimer", data={"csrf": token}).status_code == 404
        assert theirs in _message_ids(site, b)


def test_html_message_is_sanitised(site: Site, two: tuple[Account, Account]) -> None:
    _, b = two
    pro_sends(site.live, site.world, b.ins, subject="HTML", body=(
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + EVIL_HTML).encode())
    mid = _message_ids(site, b)[-1]
    with login_http(site.live, b) as c:
        html = c.get(f"/messages/{mid}").text
    body = html.split('<div class="html-mail">', 1)[1].split("</div>", 1)[0]
    assert "Résultat <b>normal</b>" in body
    for bad in ("<script", "onclick", "onmouseover", "onload", "tracker.example", "javascript:", "<iframe",
                "<form", "<style", "evil.example", "steal("):
        assert bad not in body, bad
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in body
    assert 'href="https://www.ameli.fr/"' in body and "noreferrer" in body
    assert not re.search(r"<script", html)


def test_every_request_is_in_the_access_history(site: Site, two: tuple[Account, Account]) -> None:
    a, _ = two
    with site.live.services.db.read() as s:
        before = s.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
    paths = ["/", "/corbeille", "/recherche?q=ordonnance", "/mon-espace", "/conversations/999999"]
    with login_http(site.live, a) as c:
        for path in paths:
            c.get(path)
        history = c.get("/mon-espace/historique").text
    with site.live.services.db.read() as s:
        rows = [r for r in opened_entries(s, site.live.services.keys, AuditEntry.id > before, patient_id=a.patient_id)
                if r.subject_ref == f"patient:{a.patient_id}"]
    recorded = [r for r in rows if r.action.startswith("web.")]
    seen_paths = {__import__("json").loads(r.details)["path"] for r in recorded}
    assert {p.split("?")[0] for p in paths} | {"/mon-espace/historique"} <= seen_paths
    assert all(r.peer == "127.0.0.1" for r in recorded)
    assert any(r.action == "patient.login" for r in rows)
    assert not any("ordonnance" in r.details for r in rows)  # search terms are never recorded
    assert "Connexion à votre espace" in history and "Recherche dans vos messages" in history
    assert "127.0.0.1" in history


def test_session_idle_timeout_and_logout(site: Site, two: tuple[Account, Account]) -> None:
    from datetime import timedelta

    a, b = two
    with login_http(site.live, a) as c:
        with site.live.services.db.write() as s:
            for row in s.execute(select(WebSession).where(WebSession.patient_id == a.patient_id)).scalars():
                row.last_seen_at = row.last_seen_at - timedelta(minutes=16)
        r = c.get("/")
        assert r.url.path == "/connexion" and "expiré" in r.text
    with login_http(site.live, b) as c:
        r = c.post("/deconnexion", data={"csrf": csrf_of(c.get("/").text)})
        assert r.url.path == "/connexion" and "déconnecté" in r.text
        assert c.get("/").url.path == "/connexion"
