"""The admin JSON API for mailbox types (issue 19): add with a type, bind an identity, grant
an organisational mailbox, bind a certificate, refuse passwords; refusals with their status
and code; each change audited as ``admin:<name>`` (live gateway, httpx)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.accounts import identities as ids
from gateway.testing.world import issue_client_cert
from tests.admin_web.conftest import ADMIN, AdminSite


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
