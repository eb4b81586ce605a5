"""A mailbox's quota from the admin JSON API and the console (the live gateway): set, shown,
audited (``quota.set``); a patient's INS only in request bodies, shown masked."""

from __future__ import annotations

import re

import httpx

from routing.ins import mask_ins
from tests.admin_web.conftest import ADMIN, AdminSite
from tests.admin_web.test_access import login


def test_api_set_show_and_audit(site: AdminSite) -> None:
    pro = site.world.colleague
    with site.api() as api:
        r = api.post("/quota/lookup", json={"mailbox": pro})
        assert r.status_code == 200
        assert (r.json()["storage_kib_limit"], r.json()["messages_limit"]) == (None, None)
        r = api.post("/quota", json={"mailbox": pro, "storage_kib": 10240, "messages": "500"})
        assert r.status_code == 200 and (r.json()["storage_kib_limit"], r.json()["messages_limit"]) == (10240, 500)
        r = api.post("/quota", json={"mailbox": pro, "storage_kib": "default"})
        assert r.json()["storage_kib_set"] is None and r.json()["messages_set"] == 500
        assert api.post("/quota", json={"mailbox": pro}).status_code == 400  # nothing to change
        assert api.post("/quota", json={"mailbox": pro, "messages": -1}).status_code == 400
        assert api.post("/quota", json={"mailbox": pro, "messages": [1]}).status_code == 400
        assert api.post("/quota/lookup", json={"mailbox": "absent@clinic.test"}).status_code == 404
        assert api.post("/quota/lookup", json={}).status_code == 400
        ins = site.world.patients["open"]
        r = api.post("/quota", json={"mailbox": ins, "messages": 3})
        assert r.status_code == 200 and r.json()["mailbox"] == mask_ins(ins) and ins not in r.text
        api.post("/quota", json={"mailbox": ins, "messages": "default"})
        entries = api.get("/audit", params={"actor": f"admin:{ADMIN}", "action": "quota.set"}).json()
    subjects = [e["subject"] for e in entries]
    assert subjects.count(f"pro:{pro}") == 2 and len(subjects) == 4


def test_console_page(site: AdminSite) -> None:
    with httpx.Client(base_url=site.url) as client:
        assert login(client, site).status_code == 303
        page = client.get("/admin/quota")
        assert page.status_code == 200 and "Quotas des boîtes" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        pro = site.world.pro
        shown = client.post("/admin/quota/lookup", data={"csrf": csrf.group(1), "mailbox": pro})
        assert shown.status_code == 200 and 'id="storage-limit">sans limite (par défaut)' in shown.text
        saved = client.post("/admin/quota/set", data={"csrf": csrf.group(1), "mailbox": pro, "storage_kib": "2048",
                                                      "messages": ""})
        assert saved.status_code == 200 and 'id="saved"' in saved.text
        assert 'id="storage-limit">2048 Kio<' in saved.text
        assert 'id="messages-limit">sans limite (par défaut)' in saved.text
        bad = client.post("/admin/quota/set", data={"csrf": csrf.group(1), "mailbox": pro, "storage_kib": "x"})
        assert bad.status_code == 400 and "nombre entier" in bad.text
        assert client.post("/admin/quota/set", data={"mailbox": pro, "storage_kib": "1"}).status_code == 403
        client.post("/admin/quota/set", data={"csrf": csrf.group(1), "mailbox": pro, "storage_kib": "default"})
