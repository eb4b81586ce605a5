"""The admin JSON API over HTTP (httpx) against the live gateway; schemathesis finds no 5xx."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outbound.queue import QueuedRecipient, claim_due, enqueue
from gateway.web.admin.openapi import spec
from routing.ins import synthetic_ins
from tests.admin_web.conftest import ADMIN, AdminSite

LISTE = """<?xml version="1.0" encoding="UTF-8"?>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema" DateDeGeneration="2026-11-01T00:00:00Z">
{entries}
</ListeBlanche>"""


def liste(*names: str, description: str = "Opérateur") -> bytes:
    entries = "".join(f"<Domaine><Nom>{n}</Nom><Description>{description} {n}</Description>"
                      f"<DateMAJ>2026-10-01</DateMAJ></Domaine>" for n in names)
    return LISTE.format(entries=entries).encode()


def queued_entry(site: AdminSite, domain: str = "hopital.example") -> str:
    svc = site.live.services
    with svc.db.write() as session:
        entry = enqueue(session, svc.keys, domain=domain, mail_from=site.world.pro,
                        recipients=[QueuedRecipient(f"dr.x@{domain}", ())], message=b"Subject: t\r\n\r\nbody\r\n",
                        now=datetime.now(UTC), max_age=timedelta(days=5))
        entry.next_attempt_at = datetime.now(UTC) + timedelta(hours=1)
        return entry.uuid


def test_openapi_describes_every_operation(site: AdminSite) -> None:
    with site.api() as api:
        doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and doc["servers"] == [{"url": "/admin/api"}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"/stats", "/domains", "/domains/import", "/pros", "/patients", "/patients/lookup", "/queue",
            "/audit", "/audit/export", "/audit/verify"} <= set(doc["paths"])


def test_domains_add_suspend_resume_and_audit(site: AdminSite) -> None:
    with site.api() as api:
        r = api.post("/domains", json={"name": "API-Clinique.example", "description": "par l'API",
                                       "route": "127.0.0.1:2599"})
        assert r.status_code == 201 and r.json()["name"] == "api-clinique.example"
        assert api.post("/domains", json={"name": "api-clinique.example"}).status_code == 409
        assert api.post("/domains", json={"name": "not a domain!"}).status_code == 400
        assert api.post("/domains", json={"name": "x.example", "route": "nohost"}).status_code == 400
        assert api.post("/domains", content=b"[1]").status_code == 400
        assert api.post("/domains/api-clinique.example/suspend").json()["status"] == "suspended"
        assert [d["status"] for d in api.get("/domains", params={"status": "suspended"}).json()
                if d["name"] == "api-clinique.example"] == ["suspended"]
        assert api.post("/domains/api-clinique.example/resume").json()["status"] == "active"
        assert api.post("/domains/absent.example/suspend").status_code == 404
        assert api.post("/domains/api-clinique.example/explode").status_code == 404
        entries = api.get("/audit", params={"actor": f"admin:{ADMIN}", "action": "domain.trust.*"}).json()
    actions = {(e["action"], e["subject"]) for e in entries}
    subject = "domain:api-clinique.example"
    assert {(f"domain.trust.{a}", subject) for a in ("add", "suspend", "resume")} <= actions


def test_trust_list_import_preview_apply_reapply_and_hostile(site: AdminSite) -> None:
    data = liste("liste-a.example", "liste-b.example")
    with site.api() as api:
        headers = {"content-type": "application/xml"}
        preview = api.post("/domains/import", content=data, headers=headers).json()
        assert preview["applied"] is False and preview["counts"]["added"] == 2
        assert "liste-a.example" not in {d["name"] for d in api.get("/domains").json()}
        applied = api.post("/domains/import", params={"apply": "true"}, content=data, headers=headers).json()
        assert applied["applied"] is True and applied["added"] == ["liste-a.example", "liste-b.example"]
        again = api.post("/domains/import", params={"apply": "true"}, content=data, headers=headers).json()
        assert again["applied"] is False and again["counts"]["added"] == 0
        hostile = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                   b'<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">&a;</ListeBlanche>')
        r = api.post("/domains/import", content=hostile, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "bad_trust_list"
        assert api.post("/domains/import", content=b"", headers=headers).status_code == 400


def test_pros_add_disable_enable(site: AdminSite) -> None:
    with site.api() as api:
        r = api.post("/pros", json={"address": "Dr.Api@clinic.test", "password": "un mot de passe long",
                                    "name": "Dr Api"})
        assert r.status_code == 201 and r.json()["address"] == "dr.api@clinic.test" and r.json()["has_password"]
        assert api.post("/pros", json={"address": "dr.api@clinic.test"}).status_code == 409
        assert api.post("/pros", json={"address": "x@not-hosted.example"}).json()["error"] == "not_hosted"
        assert api.post("/pros", json={"address": "x@clinic.test", "password": "short"}).status_code == 400
        assert api.post("/pros/dr.api@clinic.test/disable").json()["status"] == "disabled"
        assert "dr.api@clinic.test" in {p["address"] for p in api.get("/pros", params={"status": "disabled"}).json()}
        assert api.post("/pros/dr.api@clinic.test/enable").json()["status"] == "active"
        assert api.post("/pros/nobody@clinic.test/disable").status_code == 404


def test_patient_provision_and_lookup_show_state_and_history_never_content(site: AdminSite) -> None:
    ins = synthetic_ins(random.Random(4242))
    with site.api() as api:
        r = api.post("/patients", json={"ins": ins, "email": "perso@example.org"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["state"] == "provisioned" and len(created["activation_code"]) == 14
        assert api.post("/patients", json={"ins": ins}).status_code == 409
        assert api.post("/patients", json={"ins": "123"}).json()["error"] == "invalid_ins"
        found = api.post("/patients/lookup", json={"ins": ins}).json()
        assert found["state"] == "provisioned" and found["personal_email_set"] is True
        assert "perso@example.org" not in json.dumps(found) and "activation_code" not in found
        assert [h["action"] for h in found["history"]] == ["patient.provision"]
        again = api.post("/patients/lookup", json={"ins": ins}).json()
        assert [h["action"] for h in again["history"]][:2] == ["admin.patient.lookup", "patient.provision"]
        assert api.post("/patients/lookup", json={"ins": synthetic_ins(random.Random(99))}).status_code == 404
        # a patient's own audit entries are found by INS as well
        by_ins = api.get("/audit", params={"subject": ins}).json()
        assert {e["action"] for e in by_ins} == {"patient.provision", "admin.patient.lookup"}


def test_queue_list_retry_bounce_cancel(site: AdminSite) -> None:
    a, b, c = (queued_entry(site) for _ in range(3))
    with site.api() as api:
        listing = api.get("/queue").json()
        ids = {e["id"]: e for e in listing["entries"]}
        assert {a, b, c} <= set(ids) and listing["counts"]["pending"] >= 3
        assert listing["oldest_pending_age_seconds"] is not None and ids[a]["status"] == "pending"
        assert "body" not in json.dumps(listing)
        retried = api.post(f"/queue/{a}/retry").json()
        assert retried["next_attempt_at"] <= datetime.now(UTC).isoformat()
        bounced = api.post(f"/queue/{b}/bounce").json()
        assert bounced["expires_at"] == bounced["next_attempt_at"]
        # the worker now claims it as expired: its expiry path closes it and notifies the sender (RFC 3464)
        svc = site.live.services
        with svc.db.write() as session:
            claimed = {e.uuid: e for e in claim_due(session, svc.keys, owner="test", now=datetime.now(UTC),
                                                    lease=timedelta(seconds=1), limit=500)}
        assert b in claimed and claimed[b].expires_at <= datetime.now(UTC) and c not in claimed
        assert api.post(f"/queue/{c}/cancel").json()["status"] == "cancelled"
        assert api.post(f"/queue/{c}/cancel").status_code == 409
        assert api.post("/queue/nope/retry").status_code == 404
        assert api.get("/queue", params={"status": "weird"}).status_code == 400
        assert c in {e["id"] for e in api.get("/queue", params={"status": "cancelled"}).json()["entries"]}
        audit = api.get("/audit", params={"action": "queue.admin.*"}).json()
    assert {(e["action"], e["subject"]) for e in audit} >= {
        ("queue.admin.retry", f"queue:{a}"), ("queue.admin.bounce", f"queue:{b}"), ("queue.admin.cancel", f"queue:{c}")}


def test_audit_search_export_verify_and_stats(site: AdminSite) -> None:
    with site.api() as api:
        page = api.get("/audit", params={"limit": 2}).json()
        assert len(page) == 2 and page[0]["id"] > page[1]["id"]
        older = api.get("/audit", params={"limit": 2, "before_id": page[1]["id"]}).json()
        assert older[0]["id"] < page[1]["id"]
        assert api.get("/audit", params={"since": "yesterday"}).status_code == 400
        assert api.get("/audit", params={"until": "2000-01-01"}).json() == []
        lines = api.get("/audit/export", params={"format": "jsonl", "action": "pro.*"}).text.splitlines()
        assert lines and all(json.loads(line)["action"].startswith("pro.") for line in lines)
        rows = list(csv.reader(io.StringIO(api.get("/audit/export", params={"format": "csv"}).text)))
        assert rows[0] == ["id", "at", "actor", "action", "subject", "peer", "details", "hash"] and len(rows) > 5
        report = api.post("/audit/verify").json()
        assert report["ok"] is True and report["entries"] > 5
        exports = api.get("/audit", params={"action": "admin.audit.*"}).json()
        assert {"admin.audit.export", "admin.audit.verify"} <= {e["action"] for e in exports}
        stats = api.get("/stats").json()
    assert stats["mailboxes_created"] >= 4 and 0 < stats["opposition_rate"] < 1
    assert len(stats["series"]["created"]) == 30 and stats["series"]["created"][-1]["value"] >= 4


def test_schemathesis_finds_no_server_error(site: AdminSite) -> None:
    """Property: whatever the input (valid per the schema, or not), the API never answers 5xx."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(spec())
    auth = {"Authorization": f"Bearer {site.token}"}
    base = site.url + "/admin/api"
    failures: list[str] = []
    seen: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise: the schema is ours
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy, _=st.just(None))
            def check(case: object, _: None) -> None:
                response = case.call(base_url=base, headers=auth, timeout=10)  # type: ignore[attr-defined]
                seen.append(response.status_code)
                if response.status_code >= 500:
                    failures.append(f"{response.request.method} {response.request.url} -> {response.status_code}")

            check()
    assert not failures, failures[:5]
    assert len(seen) > 100 and any(s < 300 for s in seen) and any(400 <= s < 500 for s in seen)


@pytest.mark.parametrize("path", ["/stats", "/domains", "/queue", "/audit"])
def test_revoked_or_unknown_token_refused(site: AdminSite, path: str) -> None:
    import httpx

    with httpx.Client(base_url=site.url + "/admin/api", headers={"Authorization": "Bearer " + site.token + "x"}) as c:
        assert c.get(path).status_code == 401


def test_domains_dkim_settings(site: AdminSite) -> None:
    """Issue 17: a pinned key in any form operators have, and ``dkim_required``, through the API."""
    from cryptography.hazmat.primitives import serialization

    from crypto.dkim_keys import generate_dkim_key

    private, public = generate_dkim_key(2048)
    p = public.decode()
    record = f'k1._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n\t  "p={p[:240]}"\n\t  "{p[240:]}" )  ; -----'
    pem = serialization.load_pem_private_key(private, None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with site.api() as api:
        r = api.post("/domains", json={"name": "dkim-api.example", "operator_dn": "CN=mx.dkim-api.example",
                                       "dkim_policy": "pinned", "dkim_selector": "k1", "dkim_public_key": record,
                                       "dkim_required": True})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["dkim_policy"], body["dkim_selector"], body["dkim_required"]) == ("pinned", "k1", True)
        for bad, says in (({"dkim_policy": "none", "dkim_required": True}, "dns ou pinned"),
                          ({"dkim_policy": "pinned", "dkim_selector": "k1", "dkim_public_key": "p=QUJD"}, "illisible"),
                          ({"dkim_policy": "pinned", "dkim_selector": "k1"}, "clé publique requise")):
            r = api.post("/domains", json={"name": "dkim-bad.example", **bad})
            assert r.status_code == 400 and says in r.text, (bad, r.text)
        r = api.patch("/domains/dkim-api.example", json={"dkim_required": False, "dkim_public_key": pem})
        assert r.status_code == 200 and r.json()["changed"] == ["dkim_required"], r.text  # same key, other form
        r = api.patch("/domains/dkim-api.example", json={"dkim_policy": "dns"})
        assert r.json()["changed"] == ["dkim_policy", "dkim_public_key", "dkim_selector"]
        entries = api.get("/audit", params={"subject": "domain:dkim-api.example"}).json()
    assert entries and all(p[:40] not in json.dumps(e) for e in entries)


def test_domain_connection_allowance_through_the_api(site: AdminSite) -> None:
    """Issue 17 item 2: POST and PATCH take max_connections with the operator's networks."""
    with site.api() as api:
        r = api.post("/domains", json={"name": "conn-api.example", "max_connections": 100,
                                       "networks": ["192.0.2.0/24", "2001:db8::/32"]})
        assert r.status_code == 201, r.text
        assert (r.json()["max_connections"], r.json()["networks"]) == (100, ["192.0.2.0/24", "2001:db8::/32"])
        r = api.post("/domains", json={"name": "conn-bad.example", "max_connections": 100})
        assert r.status_code == 400 and "networks" in r.text
        r = api.patch("/domains/conn-api.example", json={"networks": "198.51.100.7"})
        assert r.status_code == 200 and r.json()["changed"] == ["networks"] and r.json()["networks"] == [
            "198.51.100.7/32"]
        r = api.patch("/domains/conn-api.example", json={"networks": None})
        assert r.status_code == 400 and "networks" in r.text  # the allowance would apply to nobody
        r = api.patch("/domains/conn-api.example", json={"max_connections": 0})
        assert r.status_code == 400
        r = api.patch("/domains/conn-api.example", json={"max_connections": None, "networks": None})
        assert r.status_code == 200 and r.json()["changed"] == ["max_connections", "networks"]
