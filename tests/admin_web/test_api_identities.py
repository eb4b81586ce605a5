"""The admin JSON API for mailbox types (issue 19): add with a type, bind an identity, grant
an organisational mailbox, bind a certificate, refuse passwords; refusals with their status
and code; each change audited as ``admin:<name>`` (live gateway, httpx)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.accounts import identities as ids
from gateway.testing.world import issue_client_cert
from tests.admin_web.conftest import ADMIN, AdminSite
from tests.admin_web.test_access import login


def test_types_bindings_and_refusals(site: AdminSite, tmp_path: Path) -> None:
    pem, _, dn = issue_client_cert(site.world.home, tmp_path, "app.clinic.test", "Clinic software")
    fingerprint = ids.fingerprint(x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(
        Encoding.DER))
    with site.api() as api:
        for address, kind in (("api-secretariat@clinic.test", "organisational"), ("api-app@clinic.test", "application"),
                              ("api-dr@clinic.test", None)):
            r = api.post("/pros", json={"address": address, **({"type": kind} if kind else {})})
            assert r.status_code == 201 and r.json()["type"] == (kind or "personal"), r.text
        r = api.post("/pros", json={"address": "api-x@clinic.test", "type": "shared"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_type"

        r = api.post("/pros/api-dr@clinic.test/identity/add", json={"subject": "810000000042"})
        assert r.status_code == 200 and r.json()["identity"] == "810000000042", r.text
        r = api.post(f"/pros/{site.world.colleague}/identity/add", json={"subject": "810000000042"})
        assert r.status_code == 409 and "déjà liée à api-dr@clinic.test" in r.json()["message"]
        r = api.post("/pros/api-app@clinic.test/identity/add", json={"subject": "810000000043"})
        assert r.status_code == 409 and "applicative" in r.json()["message"]
        r = api.post("/pros/api-secretariat@clinic.test/grants/add", json={"pro": "api-dr@clinic.test"})
        assert r.status_code == 200 and r.json()["grantees"] == ["api-dr@clinic.test"]
        r = api.post("/pros/api-dr@clinic.test/grants/add", json={"pro": "api-secretariat@clinic.test"})
        assert r.status_code == 409  # the target must be organisational
        r = api.post("/pros/api-app@clinic.test/certificates/add", json={"certificate": pem.read_text()})
        assert r.status_code == 200, r.text
        assert [(c["fingerprint"], c["subject"]) for c in r.json()["certificates"]] == [(fingerprint, dn)]
        r = api.post("/pros/api-dr@clinic.test/certificates/add", json={"certificate": pem.read_text()})
        assert r.status_code == 409
        r = api.post("/pros/api-app@clinic.test/certificates/add", json={"certificate": "not a certificate"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_certificate"
        r = api.post("/pros/nobody@clinic.test/identity/add", json={"subject": "8"})
        assert r.status_code == 404
        assert api.post("/pros/api-dr@clinic.test/identity/explode", json={}).status_code == 404
        bindings = api.get("/pros/api-dr@clinic.test/bindings").json()
        assert bindings["granted"] == ["api-secretariat@clinic.test"] and bindings["password_login"] is True

        r = api.post("/pros/api-dr@clinic.test/password-login", json={"allowed": False})
        assert r.status_code == 200 and r.json()["password_login"] is False
        assert api.post("/pros/api-dr@clinic.test/password-login", json={}).status_code == 400

        r = api.post("/pros/api-app@clinic.test/certificates/remove", json={"fingerprint": fingerprint.upper()})
        assert r.status_code == 200 and r.json()["certificates"] == []
        r = api.post("/pros/api-secretariat@clinic.test/grants/remove", json={"pro": "api-dr@clinic.test"})
        assert r.status_code == 200 and r.json()["grantees"] == []
        r = api.post("/pros/api-dr@clinic.test/identity/remove", json={"subject": "810000000042"})
        assert r.status_code == 200 and r.json()["identity"] is None
        entries = api.get("/audit", params={"actor": f"admin:{ADMIN}", "action": "pro.*"}).json()
    actions = {(e["action"], e["subject"]) for e in entries}
    assert {("pro.identity.add", "pro:api-dr@clinic.test"), ("pro.identity.remove", "pro:api-dr@clinic.test"),
            ("pro.grant", "pro:api-secretariat@clinic.test"), ("pro.revoke", "pro:api-secretariat@clinic.test"),
            ("pro.cert.add", "pro:api-app@clinic.test"), ("pro.cert.remove", "pro:api-app@clinic.test"),
            ("pro.password_login", "pro:api-dr@clinic.test")} <= actions


def test_console_pages(site: AdminSite, tmp_path: Path) -> None:
    pem, _, dn = issue_client_cert(site.world.home, tmp_path, "robot.clinic.test", "Clinic robots")
    with httpx.Client(base_url=site.url) as client:
        assert login(client, site).status_code == 303
        page = client.get("/admin/pros")
        assert page.status_code == 200 and 'name="type"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        token = csrf.group(1)
        for address, kind in (("web-org@clinic.test", "organisational"), ("web-app@clinic.test", "application"),
                              ("web-dr@clinic.test", "personal")):
            r = client.post("/admin/pros", data={"csrf": token, "address": address, "type": kind})
            assert r.status_code == 303, r.text
        listing = client.get("/admin/pros").text
        assert "organisationnelle" in listing and "/admin/pros/web-app%40clinic.test/access" in listing

        r = client.post("/admin/pros/web-dr@clinic.test/access/identity/add", data={"csrf": token,
                                                                                    "subject": "820000000001"})
        assert r.status_code == 200 and 'id="identity">820000000001' in r.text and "Identité liée." in r.text
        r = client.post("/admin/pros/web-org@clinic.test/access/grants/add", data={"csrf": token,
                                                                                   "pro": "web-app@clinic.test"})
        assert r.status_code == 409 and "pas une boîte personnelle (elle est applicative)" in r.text
        r = client.post("/admin/pros/web-org@clinic.test/access/grants/add", data={"csrf": token,
                                                                                   "pro": "web-dr@clinic.test"})
        assert r.status_code == 200 and "<li>web-dr@clinic.test" in r.text
        r = client.post("/admin/pros/web-app@clinic.test/access/certificates/add",
                        data={"csrf": token, "certificate": pem.read_text()})
        assert r.status_code == 200 and dn in r.text and "1 certificat(s)" in r.text
        fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', r.text)
        assert fingerprint
        r = client.post("/admin/pros/web-app@clinic.test/access/certificates/remove",
                        data={"csrf": token, "fingerprint": fingerprint.group(1)})
        assert r.status_code == 200 and "0 certificat(s)" in r.text
        r = client.post("/admin/pros/web-dr@clinic.test/access/password-login", data={"csrf": token,
                                                                                      "allowed": "false"})
        assert r.status_code == 200 and "refusé pour ce compte" in r.text
        assert client.get("/admin/pros/web-dr@clinic.test/access").status_code == 200
        assert client.get("/admin/pros/nobody@clinic.test/access").status_code == 404
        r = client.post("/admin/pros/web-dr@clinic.test/access/identity/add", data={"subject": "8"})
        assert r.status_code in (400, 403)  # no CSRF token: refused before anything
    with site.api() as api:
        entries = api.get("/audit", params={"actor": f"admin:{ADMIN}", "action": "pro.*"}).json()
    assert {"pro.identity.add", "pro.grant", "pro.cert.add", "pro.cert.remove", "pro.password_login"} <= {
        e["action"] for e in entries if e["subject"].startswith("pro:web-")}
