"""Changes made at the command line, in the console or through the API, seen by a running gateway:
a professional's password, disabling a professional or an administrator, editing a trusted domain."""

from __future__ import annotations

import imaplib
import itertools
import json
import random
import re
import smtplib
import socket
import ssl
import time

import httpx
import pyotp
import pytest

from routing.ins import synthetic_ins
from tests.admin.conftest import cli
from tests.admin_web.conftest import AdminSite, add_admin_account
from tests.admin_web.test_access import login
from tests.admin_web.test_api import queued_entry

FIRST = "une premiere phrase de passe"
SECOND = "une seconde phrase de passe"


# Each check connects from a loopback address of its own: the failed logins these tests make
# on purpose must not count against 127.0.0.1, which the other tests of the shared gateway use
# (failures are throttled per client address).
_SOURCES = itertools.count(random.randint(100, 200))


def _source() -> str:
    return f"127.0.0.{next(_SOURCES) % 250 + 2}"


def _smtp_ok(site: AdminSite, user: str, password: str) -> bool:
    client = smtplib.SMTP("127.0.0.1", site.live.port("submission"), timeout=30, source_address=(_source(), 0))
    try:
        client.starttls(context=ssl.create_default_context(cafile=site.live.ca_file))
        client.ehlo("client.clinic.test")
        client.login(user, password)
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        client.close()
    return True


class _Imap(imaplib.IMAP4):
    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._source, 0))


def _imap_ok(site: AdminSite, user: str, password: str) -> bool:
    conn = _Imap(site.live.port("imap"), _source())
    try:
        conn.starttls(ssl.create_default_context(cafile=site.live.ca_file))
        conn.login(user, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def _new_pro(site: AdminSite, local: str) -> str:
    address = f"{local}@clinic.test"
    with site.api() as api:
        r = api.post("/pros", json={"address": address, "password": FIRST})
        assert r.status_code == 201, r.text
    return address


def test_pro_password_set_through_the_api_and_the_console(site: AdminSite) -> None:
    address = _new_pro(site, "dr.motdepasse")
    with site.api() as api:
        assert api.post(f"/pros/{address}/password", json={"password": "court"}).status_code == 400
        assert api.post(f"/pros/{address}/password", json={}).json()["error"] == "missing"
        assert api.post("/pros/personne@clinic.test/password", json={"password": SECOND}).status_code == 404
        assert _smtp_ok(site, address, FIRST)
        r = api.post(f"/pros/{address}/password", json={"password": SECOND})
        assert r.status_code == 200 and r.json()["address"] == address and r.json()["has_password"]
        assert "/pros/{address}/password" in api.get("/openapi.json").json()["paths"]
    assert not _smtp_ok(site, address, FIRST) and _smtp_ok(site, address, SECOND)

    with httpx.Client(base_url=site.url) as client:
        assert login(client, site).status_code == 303
        page = client.get("/admin/pros")
        assert f'action="/admin/pros/{address.replace("@", "%40")}/password"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        url = f"/admin/pros/{address}/password"
        r = client.post(url, data={"csrf": csrf.group(1), "password": FIRST, "password_again": SECOND})
        assert r.status_code == 400 and "diffèrent" in r.text
        r = client.post(url, data={"csrf": csrf.group(1), "password": FIRST, "password_again": FIRST})
        assert r.status_code == 303 and r.headers["location"] == "/admin/pros?msg=pro-password"
        assert "Mot de passe du compte professionnel défini." in client.get(r.headers["location"]).text
    assert _imap_ok(site, address, FIRST) and not _imap_ok(site, address, SECOND)
    with site.api() as api:
        entries = api.get("/audit", params={"action": "pro.password", "subject": f"pro:{address}"}).json()
    assert [e["actor"] for e in entries] == ["admin:alice", "admin:alice"]
    assert all(FIRST not in str(e["details"]) and SECOND not in str(e["details"]) for e in entries)


@pytest.mark.parametrize("protocol", ["smtp", "imap"])
def test_pro_disabled_at_the_command_line_cannot_log_in_from_the_next_attempt(site: AdminSite,
                                                                              protocol: str) -> None:
    address = _new_pro(site, f"dr.desactive.{protocol}")
    works = _smtp_ok if protocol == "smtp" else _imap_ok
    assert works(site, address, FIRST)
    code, _, err = cli(site.home, "pro", "disable", address)
    assert code == 0, err
    assert not works(site, address, FIRST)
    assert cli(site.home, "pro", "enable", address)[0] == 0
    assert works(site, address, FIRST)


def test_admin_disabled_at_the_command_line_loses_console_and_api_until_enabled(site: AdminSite) -> None:
    password = "la phrase de bob est longue"
    secret, token = add_admin_account(site.home, "bob", password)
    totp = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    api = httpx.Client(base_url=site.url + "/admin/api", headers={"Authorization": f"Bearer {token}"})
    own = httpx.HTTPTransport(local_address=_source())  # its failed login must not slow the others down
    with httpx.Client(base_url=site.url, transport=own) as console, api:
        r = login(console, site, name="bob", password=password, code=totp.at(step * 30))
        assert r.status_code == 303 and console.get("/admin/").status_code == 200
        assert api.get("/stats").status_code == 200

        code, out, _ = cli(site.home, "admin", "tokens", "bob", "--json")
        (listed,) = json.loads(out)
        assert code == 0 and listed["label"] == "tests" and listed["active"] and token not in out
        code, out, _ = cli(site.home, "admin", "list", "--json")
        bob = {a["name"]: a for a in json.loads(out)}["bob"]
        assert bob["api_tokens"] == 1 and bob["console_sessions"] == 1 and "password" not in out

        code, out, err = cli(site.home, "admin", "disable", "bob")
        assert code == 0 and "1 console session(s) ended" in out, err
        assert console.get("/admin/").status_code == 303  # the session is gone
        assert api.get("/stats").status_code == 401
        r = login(console, site, name="bob", password=password, code=totp.at((step + 1) * 30))
        assert r.status_code != 303 and console.get("/admin/").status_code == 303  # and no new login

        assert cli(site.home, "admin", "enable", "bob")[0] == 0
        assert api.get("/stats").status_code == 200
        code, out, _ = cli(site.home, "admin", "revoke", str(listed["id"]))
        assert code == 0 and "revoked" in out
        assert api.get("/stats").status_code == 401
    code, _, err = cli(site.home, "admin", "revoke", str(listed["id"]))
    assert code == 1 and f"API token {listed['id']} already revoked" in err
    for argv, expected in ((["revoke", "999999"], "no API token with id 999999"),
                           (["tokens", "nobody"], "no admin named nobody"),
                           (["disable", "Bob Smith"], "invalid admin name")):
        code, _, err = cli(site.home, "admin", *argv)
        assert code == 1 and err.startswith(f"gateway: error: {expected}") and err.count("\n") == 1
    code, out, _ = cli(site.home, "admin", "tokens", "bob")
    assert code == 0 and "tests" in out
    with site.api() as admin_api:
        entries = admin_api.get("/audit", params={"subject": "admin:bob"}).json()
    cli_actions = {e["action"] for e in entries if e["actor"].startswith("admin:cli:")}
    assert {"admin.disable", "admin.enable", "admin.token.revoke"} <= cli_actions


def test_trusted_domain_edited_in_place_through_the_api(site: AdminSite) -> None:
    with site.api() as api:
        assert api.post("/domains", json={"name": "edit-me.example", "description": "avant"}).status_code == 201
        r = api.patch("/domains/edit-me.example", json={"description": "après", "max_message_size": 4096,
                                                        "route": "127.0.0.1:2599"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["changed"] == ["description", "max_message_size", "route"] and body["description"] == "après"
        assert body["dkim_policy"] == "dns" and body["tls_required"] is True and body["status"] == "active"
        assert api.patch("/domains/edit-me.example", json={"description": "après"}).json()["changed"] == []
        r = api.patch("/domains/edit-me.example", json={"route": None, "max_message_size": None})
        assert r.json()["route"] is None and r.json()["max_message_size"] is None
        for bad in ({"route": "nohost"}, {"max_message_size": 10}, {"colour": "red"}, {"tls_required": "peut-être"},
                    {"dkim_selector": "s1"}, {"dkim_policy": "pinned"}):
            r = api.patch("/domains/edit-me.example", json=bad)
            assert r.status_code == 400, (bad, r.text)
        assert api.patch("/domains/absent.example", json={"description": "x"}).status_code == 404
        assert "patch" in api.get("/openapi.json").json()["paths"]["/domains/{name}"]
        entries = api.get("/audit", params={"action": "domain.trust.set", "subject": "domain:edit-me.example"}).json()
    assert len(entries) == 2 and all(e["actor"] == "admin:alice" for e in entries)


def test_the_api_calls_the_same_operations_as_the_command_line(site: AdminSite) -> None:
    entry = queued_entry(site)
    rng = random.Random(5151)
    closing, deleting = synthetic_ins(rng), synthetic_ins(rng)
    with site.api() as api:
        pro = api.get(f"/pros/{site.world.pro}").json()
        assert pro["name"] == "Dr Martin" and isinstance(pro["messages"], int) and "password_hash" not in pro
        assert api.get("/pros/personne@clinic.test").status_code == 404
        shown = api.get(f"/queue/{entry}").json()
        assert shown["envelope"]["recipients"] == [{"address": "dr.x@hopital.example", "notify": None}]
        assert "body" not in json.dumps(shown) and api.get("/queue/" + "0" * 32).status_code == 404
        for ins in (closing, deleting):
            assert api.post("/patients", json={"ins": ins, "open": True}).status_code == 201
        closed = api.post("/patients/close", json={"ins": closing}).json()
        assert closed["state"] == "closed" and closed["purge_after"] and closing not in json.dumps(closed)
        assert api.post("/patients/close", json={"ins": closing}).status_code == 409
        assert api.post("/patients/close", json={"ins": "123"}).json()["error"] == "invalid_ins"
        purged = api.post("/patients/deletion", json={"ins": deleting, "purge_now": True}).json()
        assert purged["state"] == "purged" and purged["messages_deleted"] == 0
        assert api.post("/patients/deletion", json={"ins": deleting}).status_code == 409
        found = api.post("/patients/lookup", json={"ins": closing}).json()
        assert [h["action"] for h in found["history"]][:2] == ["patient.close", "patient.provision"]
        audit = api.get("/audit", params={"action": "queue.admin.show", "subject": f"queue:{entry}"}).json()
    assert [e["actor"] for e in audit] == ["admin:alice"]
