"""Who gets in: an admin with password + TOTP; nobody else (anonymous, patient, professional)."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.testing.world import PASSWORD
from tests.admin_web.conftest import ADMIN, ADMIN_PASSWORD, AdminSite
from tests.web.kit import activate_http, login_http, new_ins, provision

PAGES = ["/admin/", "/admin/domains", "/admin/domains/import", "/admin/pros", "/admin/patients", "/admin/queue",
         "/admin/audit", "/admin/audit/export.csv", "/admin/audit/export.jsonl", "/admin/mediation", "/admin/quota"]
POSTS = ["/admin/domains", "/admin/pros", "/admin/patients/lookup", "/admin/audit/verify", "/admin/logout",
         "/admin/domains/hopital.example/status", "/admin/queue/x/retry", "/admin/mediation/lookup",
         "/admin/mediation/code", "/admin/quota/lookup", "/admin/quota/set",
         "/admin/pros/a@clinic.test/access/identity/add", "/admin/pros/a@clinic.test/access/password-login"]
API = [("GET", "/admin/api/openapi.json"), ("GET", "/admin/api/stats"), ("GET", "/admin/api/domains"),
       ("GET", "/admin/api/pros"), ("POST", "/admin/api/patients/lookup"), ("GET", "/admin/api/queue"),
       ("GET", "/admin/api/audit"), ("POST", "/admin/api/audit/verify"), ("GET", "/admin/api/audit/export"),
       ("POST", "/admin/api/mediation/lookup"), ("POST", "/admin/api/mediation/new-code"),
       ("POST", "/admin/api/quota/lookup"), ("POST", "/admin/api/quota"),
       ("GET", "/admin/api/pros/a@clinic.test/bindings"), ("POST", "/admin/api/pros/a@clinic.test/password-login"),
       ("POST", "/admin/api/pros/a@clinic.test/identity/add")]


def login_form(client: httpx.Client) -> str:
    page = client.get("/admin/login")
    assert page.status_code == 200
    found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def login(client: httpx.Client, site: AdminSite, *, name: str = ADMIN, password: str = ADMIN_PASSWORD,
          code: str | None = None) -> httpx.Response:
    token = login_form(client)
    # a failure may be answered late on purpose (the admin throttle: up to 5 s from the 6th
    # failure from one address on the shared site), later still on a busy machine
    return client.post("/admin/login", data={"name": name, "password": password, "code": code or site.code(),
                                             "login_csrf": token}, timeout=30)


def assert_refused(client: httpx.Client) -> None:
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/admin/login", path
    for path in POSTS:
        r = client.post(path, data={"csrf": "x", "ins": "1"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/login", path
    for method, path in API:
        r = client.request(method, path, json={"ins": "1"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
        assert "ins" not in r.text.lower() or "INS" not in r.text
    assert client.get("/metrics").status_code == 401


def test_anonymous_gets_nothing(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        assert_refused(client)
        assert client.get("/admin").headers["location"] == "/admin/"
        r = client.get("/admin/api/stats", headers={"Authorization": "Bearer hmga_not-a-token"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = client.get("/admin/api/stats", headers={"Authorization": f"Basic {site.token}"})
        assert r.status_code == 401


def test_patient_gets_nothing(site: AdminSite) -> None:
    ins = new_ins()
    account = activate_http(site.live, ins, provision(site.home, ins))
    with login_http(site.live, account) as client:
        assert client.cookies, "the patient has a session"
        client.follow_redirects = False
        assert_refused(client)


def test_professional_credentials_do_not_open_the_console(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        r = login(client, site, name=site.world.pro, password=PASSWORD, code="123456")
        assert r.status_code == 401 and "incorrect" in r.text
        assert_refused(client)


@pytest.mark.parametrize("field", ["password", "code", "name"])
def test_wrong_credentials_refused_without_saying_which(site: AdminSite, field: str) -> None:
    values = {"name": ADMIN, "password": ADMIN_PASSWORD, "code": "000000"}
    if field != "code":
        values["code"] = str(site.totp.now())
        values[field] = "wrong-" + values[field]
    with httpx.Client(base_url=site.url) as client:
        r = login(client, site, **values)
        assert r.status_code == 401
        assert "Identifiant, mot de passe ou code incorrect." in r.text
        assert not any(c.startswith("hmg_admin") and c != "hmg_admin_login" for c in client.cookies)
        assert_refused(client)


def test_login_form_needs_its_csrf_token(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        r = client.post("/admin/login", data={"name": ADMIN, "password": ADMIN_PASSWORD, "code": "000000",
                                              "login_csrf": "forged"})
        assert r.status_code == 403


def test_security_headers(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        for path in ("/admin/login", "/admin/", "/admin/api/stats"):
            r = client.get(path)
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
        cookie = client.get("/admin/login").headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie


def test_login_then_csrf_on_every_form_then_logout(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        r = login(client, site)
        assert r.status_code == 303 and r.headers["location"] == "/admin/"
        page = client.get("/admin/")
        assert page.status_code == 200 and "Tableau de bord" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        r = client.post("/admin/domains", data={"name": "sans-jeton.example"})
        assert r.status_code == 403
        r = client.post("/admin/domains", data={"name": "sans-jeton.example", "csrf": "forged"})
        assert r.status_code == 403
        r = client.post("/admin/logout", data={"csrf": csrf.group(1)})
        assert r.status_code == 303
        assert client.get("/admin/").status_code == 303
        # the old cookie no longer works either (the session row is gone)
        assert_refused(client)


def test_login_form_with_a_non_ascii_token_is_refused_not_a_server_error(site: AdminSite) -> None:
    """A forged ``login_csrf`` that is not ASCII gets the expired-form answer (hmac.compare_digest
    refuses non-ASCII ``str``: the admin console once compared text and answered 500)."""
    with httpx.Client(base_url=site.url) as client:
        login_form(client)
        r = client.post("/admin/login", data={"name": ADMIN, "password": ADMIN_PASSWORD, "code": "000000",
                                               "login_csrf": "jeton-forgé-é"})
        assert r.status_code == 403 and "Formulaire expiré" in r.text
