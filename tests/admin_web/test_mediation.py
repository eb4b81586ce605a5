"""Mediators (issue 14) in the admin console and API: "Aide à la connexion" and nothing else."""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import select
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from gateway.accounts import ins_index, mediators
from gateway.accounts.mediation_limit import MediationLimiter, MediationLimits, Rate
from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.app.context import Location, open_services
from gateway.store.models import AuditEntry, QueueEntry, TrustedDomain
from gateway.store.services import Services
from gateway.testing.audit import opened_entries
from gateway.testing.live import make_home
from gateway.web.admin import build
from gateway.web.admin.context import AdminContext
from tests.admin_web.conftest import ADMIN_PASSWORD, AdminSite, add_admin_account
from tests.admin_web.test_access import login
from tests.web.kit import activate_http, csrf_of, new_ins, provision

PASSWORD = "une phrase de médiation"
ALLOWED = {("GET", "/mediation"), ("POST", "/mediation/lookup"), ("POST", "/mediation/code"),
           ("POST", "/api/mediation/lookup"), ("POST", "/api/mediation/new-code"),
           ("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}
_names = (f"desk{i}" for i in itertools.count(1))


@dataclass
class Helper:
    name: str
    totp: pyotp.TOTP
    token: str
    step: int = 0

    def code(self) -> str:
        step = max(self.step + 1, int(time.time()) // 30)
        while step > int(time.time()) // 30 + 1:
            time.sleep(0.5)
        self.step = step
        return str(self.totp.at(step * 30))


def add_helper(svc: Services) -> Helper:
    name = next(_names)
    with svc.db.write() as s:
        created = mediators.add_mediator(s, svc.keys, name, PASSWORD, organisation="France Services Test",
                                         now=datetime.now(UTC))
        token = mediators.create_token(s, name, label="tests", now=datetime.now(UTC))
    return Helper(name, pyotp.TOTP(created.totp_secret), token)


@pytest.fixture
def helper(site: AdminSite) -> Helper:
    return add_helper(site.live.services)


@contextlib.contextmanager
def logged_in(site: AdminSite, helper: Helper) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url) as client:
        r = login(client, site, name=helper.name, password=PASSWORD, code=helper.code())
        assert r.status_code == 303 and r.headers["location"] == "/admin/mediation", r.text[:300]
        yield client


def admin_routes(site: AdminSite) -> list[tuple[str, str]]:
    """Every (method, path) of the admin app, path parameters filled in: new routes are checked too."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if route.path != "/static":
                    walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                path = re.sub(r"\{[^}]+\}", "x", prefix + route.path).replace("export.x", "export.csv")
                found.extend((m, path) for m in sorted(route.methods or ()) if m != "HEAD")

    walk(list(build(AdminContext(site.live.services)).routes), "")
    assert len(found) > 25
    return found


def test_a_mediator_gets_403_on_every_other_route_and_endpoint(site: AdminSite, helper: Helper) -> None:
    with logged_in(site, helper) as client:
        csrf = csrf_of(client.get("/admin/mediation").text)
        checked = 0
        for method, path in admin_routes(site):
            if (method, path) in ALLOWED:
                continue
            if path.startswith("/api/"):
                r = client.request(method, "/admin" + path, headers={"Authorization": f"Bearer {helper.token}"},
                                   json={"ins": site.world.patients["open"], "name": "evil.example"})
                assert r.status_code == 403 and r.json()["error"] == "forbidden", (method, path, r.status_code)
            else:
                r = client.request(method, "/admin" + path, data={"csrf": csrf, "name": "evil.example",
                                                                  "ins": site.world.patients["open"]})
                assert r.status_code == 403, (method, path, r.status_code)
                assert "réservée aux administrateurs" in r.text and site.world.patients["open"] not in r.text
            checked += 1
        assert checked > 20
        assert client.get("/metrics", headers={"Authorization": f"Bearer {helper.token}"}).status_code == 401
        nav = html.unescape(client.get("/admin/mediation").text)
        assert "Tableau de bord" not in nav and "Journal d'audit" not in nav and "Aide à la connexion" in nav
    with site.live.services.db.read() as s:
        assert s.execute(select(TrustedDomain).where(TrustedDomain.name == "evil.example")).first() is None


def _lookup(client: httpx.Client, ins: str) -> httpx.Response:
    csrf = csrf_of(client.get("/admin/mediation").text)
    return client.post("/admin/mediation/lookup", data={"csrf": csrf, "ins": ins})


def test_console_lookup_and_new_code_show_the_state_only(site: AdminSite, helper: Helper) -> None:
    ins = new_ins()
    first = provision(site.home, ins)
    with logged_in(site, helper) as client:
        page = _lookup(client, ins)
        assert page.status_code == 200 and "en attente d'activation" in html.unescape(page.text)
        assert ins[:5] not in page.text.replace(f'value="{ins}"', "")  # masked, except in the form's own field
        r = client.post("/admin/mediation/code", data={"csrf": csrf_of(page.text), "ins": ins, "delivery": "show"})
        code = re.search(r'id="issued-code">([A-Z2-9-]+)<', r.text)
        assert r.status_code == 200 and code and code.group(1) != first
        # no address on file for this patient: the mail button is not offered, and a forged request is refused
        assert 'value="mail"' not in _lookup(client, ins).text
        r = client.post("/admin/mediation/code", data={"csrf": csrf_of(page.text), "ins": ins, "delivery": "mail"})
        assert r.status_code == 409 and "Aucune adresse personnelle" in r.text
        r = _lookup(client, "123")
        assert r.status_code == 400 and "INS invalide" in r.text
        r = _lookup(client, new_ins())
        assert r.status_code == 404 and "aucun espace patient" in r.text
    with site.live.services.db.read() as s:
        patient = ins_index.find(s, site.live.services.keys, ins)
        assert patient is not None and patient.state == "provisioned"
        rows = [(e.actor, e.action) for e in opened_entries(s, site.live.services.keys, patient_id=patient.id)
                if e.subject_ref == f"patient:{patient.id}"]
    who = f"mediator:{helper.name}"
    assert (who, "mediator.patient.lookup") in rows and (who, "patient.new_code") in rows
    account = activate_http(site.live, ins, code.group(1))  # the new code works; the space opens
    assert account.patient_id == patient.id


def test_mail_delivery_and_spaces_without_a_code(site: AdminSite, helper: Helper) -> None:
    world = site.world
    with logged_in(site, helper) as client:
        page = _lookup(client, world.patients["open"])
        assert page.status_code == 200 and 'value="mail"' in page.text
        assert "perso.example" not in page.text  # the address itself is never shown
        before = _notifications(site)
        r = client.post("/admin/mediation/code", data={"csrf": csrf_of(page.text), "ins": world.patients["open"],
                                                      "delivery": "mail"})
        assert r.status_code == 200 and "issued-code" not in r.text
        assert "envoyé à l'adresse personnelle" in html.unescape(r.text)
        assert _notifications(site) == before + 1
        for state in ("opposed", "closed"):
            page = _lookup(client, world.patients[state])
            assert page.status_code == 200 and 'id="no-code"' in page.text and 'name="delivery"' not in page.text
            r = client.post("/admin/mediation/code", data={"csrf": csrf_of(page.text), "ins": world.patients[state],
                                                          "delivery": "show"})
            assert r.status_code == 409 and "aucun code" in r.text


def _notifications(site: AdminSite) -> int:
    with site.live.services.db.read() as s:
        return len(s.execute(select(QueueEntry.id).where(QueueEntry.kind == "notification")).all())


def test_api_with_a_mediator_token(site: AdminSite, helper: Helper) -> None:
    ins = new_ins()
    provision(site.home, ins)
    headers = {"Authorization": f"Bearer {helper.token}"}
    with httpx.Client(base_url=site.url + "/admin/api", headers=headers) as api:
        r = api.post("/mediation/lookup", json={"ins": ins})
        assert r.status_code == 200
        body = r.json()
        assert body["state"] == "provisioned" and body["can_issue_code"] and not body["personal_email_on_file"]
        assert not {"history", "address", "email", "personal_email"} & set(body)
        r = api.post("/mediation/new-code", json={"ins": ins})
        assert r.status_code == 201 and r.json()["delivery"] == "show"
        assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", r.json()["activation_code"])
        r = api.post("/mediation/new-code", json={"ins": ins, "send": True})
        assert r.status_code == 409 and r.json()["error"] == "code_refused_no_email"
        r = api.post("/mediation/new-code", json={"ins": site.world.patients["opposed"]})
        assert r.status_code == 409 and r.json()["error"] == "code_refused_state"
        r = api.post("/mediation/new-code", json={"ins": site.world.patients["open"], "send": True})
        assert r.status_code == 201 and r.json()["delivery"] == "mail" and r.json()["activation_code"] is None
        assert api.post("/mediation/lookup", json={"ins": "nope"}).status_code == 400
        assert api.get("/stats").status_code == 403
        assert api.post("/patients/lookup", json={"ins": ins}).status_code == 403
    with site.live.services.db.read() as s:
        details = [json.loads(e.details) for e in opened_entries(
            s, site.live.services.keys, AuditEntry.actor == f"mediator:{helper.name}",
            AuditEntry.action == "patient.new_code")]
    assert [(d["via"], d["delivery"]) for d in details] == [("mediator-api", "show"), ("mediator-api", "mail")]


def test_an_admin_may_use_the_mediation_pages_too(site: AdminSite) -> None:
    ins = new_ins()
    provision(site.home, ins)
    # an administrator of its own: no wait for a TOTP step the shared one has not used yet
    secret, _ = add_admin_account(site.home, "mediation-admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=site.url) as client:
        assert login(client, site, name="mediation-admin", code=pyotp.TOTP(secret).now()).status_code == 303
        page = _lookup(client, ins)
        r = client.post("/admin/mediation/code", data={"csrf": csrf_of(page.text), "ins": ins, "delivery": "show"})
        assert r.status_code == 200 and "issued-code" in r.text
    with site.api() as api:
        assert api.post("/mediation/lookup", json={"ins": ins}).json()["code_valid_until"] is not None


def test_disabled_mediator_is_out_and_logout_works(site: AdminSite, helper: Helper) -> None:
    with logged_in(site, helper) as client:
        assert client.get("/admin/mediation").status_code == 200
        r = client.post("/admin/logout", data={"csrf": csrf_of(client.get("/admin/mediation").text)})
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        assert client.get("/admin/mediation").status_code == 303
    other = add_helper(site.live.services)  # a second account: no wait for a fresh TOTP step
    with logged_in(site, other) as client:
        with site.live.services.db.write() as s:
            mediators.set_status(s, other.name, "disabled", now=datetime.now(UTC))
        r = client.get("/admin/mediation")
        assert r.status_code == 303 and r.headers["location"] == "/admin/login"
        r = login(client, site, name=other.name, password=PASSWORD, code=other.totp.now())
        assert r.status_code == 401
    r = httpx.post(site.url + "/admin/api/mediation/lookup", json={"ins": site.world.patients["open"]},
                   headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 401


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Services]:
    home = make_home(tmp_path / "home")
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        yield svc
    finally:
        svc.close()


def test_mediator_login_uses_the_admin_throttle(fresh: Services) -> None:
    helper = add_helper(fresh)
    throttle = LoginThrottle(fresh.db, fresh.keys, ThrottleConfig(delay_after=2, lockout_after=3, base_delay=0.01,
                                                      max_delay=0.02, lockout=60.0), scope="admin")
    app = build(AdminContext(fresh, throttle=throttle))
    with TestClient(app, base_url="http://testserver/admin", root_path="/admin") as client:
        def attempt(password: str) -> int:
            token = client.get("/login").text.split('name="login_csrf" value="')[1].split('"')[0]
            # wrong passwords never use up a TOTP step, and a locked name is refused before any check
            return client.post("/login", data={"name": helper.name, "password": password, "code": helper.totp.now(),
                                               "login_csrf": token}, follow_redirects=False).status_code

        assert [attempt("wrong password!") for _ in range(3)] == [401, 401, 401]
        assert attempt(PASSWORD) == 429
    with fresh.db.read() as s:
        failed = [json.loads(e.details)["result"] for e in s.execute(select(AuditEntry).where(
            AuditEntry.action == "mediator.login", AuditEntry.subject_ref == f"mediator:{helper.name}")).scalars()]
    assert failed == ["failed", "failed", "failed"]


# --- the per-mediator limit on lookups by INS and new codes (gateway.accounts.mediation_limit) ---------

LIMITS = MediationLimits(lookup=Rate(60, 2), code=Rate(60, 1))  # one a minute; 2 lookups, 1 code at once


@dataclass
class Nodes:
    home: Path
    a: TestClient
    b: TestClient
    clock: list[float]
    svc: Services


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    """Two nodes (each its own Services and Database handle) on one database, one fake clock."""
    home = make_home(tmp_path / "home")
    clock = [time.time()]
    opened = [open_services(Location(home / "gateway.toml", home, True)) for _ in range(2)]
    apps = [build(AdminContext(svc, limiter=MediationLimiter(svc.db, LIMITS, lambda: clock[0]))) for svc in opened]
    try:
        with TestClient(apps[0], base_url="http://testserver/admin", root_path="/admin") as a, \
                TestClient(apps[1], base_url="http://testserver/admin", root_path="/admin") as b:
            yield Nodes(home, a, b, clock, opened[0])
    finally:
        for svc in opened:
            svc.close()


def _patient_lookups(svc: Services, helper: Helper) -> int:
    with svc.db.read() as s:
        return len(opened_entries(s, svc.keys, AuditEntry.actor == f"mediator:{helper.name}",
                                  AuditEntry.action == "mediator.patient.lookup"))


def _limit_entries(svc: Services, helper: Helper) -> list[str]:
    with svc.db.read() as s:
        return list(s.execute(select(AuditEntry.action).where(
            AuditEntry.subject_ref == f"mediator:{helper.name}",
            AuditEntry.action.in_(["mediator.rate_limited", "mediator.rate_limit_reached"]))
            .order_by(AuditEntry.id)).scalars())


def test_api_lookups_beyond_the_limit_get_429_on_every_node(nodes: Nodes) -> None:
    ins = new_ins()
    provision(nodes.home, ins)
    helper, other = add_helper(nodes.svc), add_helper(nodes.svc)
    _, admin_token = add_admin_account(nodes.home, "limit-admin", ADMIN_PASSWORD)

    def lookup(client: TestClient, who: Helper | str, looked_up: str = ins) -> httpx.Response:
        token = who if isinstance(who, str) else who.token
        return client.post("/api/mediation/lookup", json={"ins": looked_up},
                           headers={"Authorization": f"Bearer {token}"})

    assert lookup(nodes.a, helper).status_code == 200
    assert lookup(nodes.b, helper, new_ins()).status_code == 404  # a lookup that finds nothing counts too
    assert lookup(nodes.a, helper, "123").status_code == 400  # a malformed INS looks nothing up: free
    r = lookup(nodes.b, helper)
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["error"] == "rate_limited" and r.json()["retry_after"] == 60 and ins not in r.text
    r = nodes.a.post("/api/mediation/new-code", json={"ins": ins}, headers={"Authorization": f"Bearer {helper.token}"})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert _patient_lookups(nodes.svc, helper) == 1  # the refused ones looked nothing up
    assert _limit_entries(nodes.svc, helper) == ["mediator.rate_limit_reached", "mediator.rate_limited",
                                                 "mediator.rate_limited"]
    assert lookup(nodes.b, other).status_code == 200  # another mediator is unaffected
    assert all(lookup(nodes.b, admin_token).status_code == 200 for _ in range(5))  # administrators are not limited
    nodes.clock[0] += 59
    assert lookup(nodes.a, helper).status_code == 429
    nodes.clock[0] += 1  # one interval since the burst: one more lookup
    assert lookup(nodes.a, helper).status_code == 200
    assert lookup(nodes.b, helper).status_code == 429


def _console(client: TestClient, helper: Helper) -> str:
    token = client.get("/login").text.split('name="login_csrf" value="')[1].split('"')[0]
    r = client.post("/login", data={"name": helper.name, "password": PASSWORD, "code": helper.code(),
                                    "login_csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return csrf_of(client.get("/mediation").text)


def test_console_lookups_beyond_the_limit_get_a_french_429_page(nodes: Nodes) -> None:
    ins = new_ins()
    provision(nodes.home, ins)
    helper = add_helper(nodes.svc)
    csrf = _console(nodes.a, helper)
    nodes.b.cookies = nodes.a.cookies  # the same session on the other node
    r = nodes.a.post("/mediation/code", data={"csrf": csrf, "ins": ins, "delivery": "show"})
    assert r.status_code == 200 and 'id="issued-code"' in r.text  # a code: one code and one lookup
    r = nodes.b.post("/mediation/code", data={"csrf": csrf, "ins": ins, "delivery": "show"})
    assert r.status_code == 429 and r.headers["retry-after"] == "60" and 'id="issued-code"' not in r.text
    assert "Trop de codes d'activation émis" in html.unescape(r.text)
    assert nodes.b.post("/mediation/lookup", data={"csrf": csrf, "ins": ins}).status_code == 200
    r = nodes.a.post("/mediation/lookup", data={"csrf": csrf, "ins": ins})
    text = html.unescape(r.text)
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert "Trop de recherches" in text and "réessayez dans 1 minute" in text and 'id="space-facts"' not in text
    assert ins not in text.replace(f'value="{ins}"', "")
    assert _patient_lookups(nodes.svc, helper) == 1
    nodes.clock[0] += 60
    r = nodes.b.post("/mediation/lookup", data={"csrf": csrf, "ins": ins})
    assert r.status_code == 200 and 'id="space-facts"' in r.text
