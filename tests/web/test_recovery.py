"""Account recovery over HTTP (issue 14): "Mot de passe oublié", a new code on an open space,
new password and TOTP, sessions ended, mailbox kept, history shown."""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.app.cli.main import main as cli_main
from gateway.outbound.queue import MSG_PURPOSE
from gateway.store import audit_links
from gateway.store.models import Patient, QueueEntry
from gateway.testing.live import LiveGateway
from tests.web.conftest import Site
from tests.web.kit import (
    PATIENT_PASSWORD,
    activate_http,
    base_url,
    csrf_of,
    login_http,
    new_ins,
    pro_sends,
    provision,
    totp_now,
)

NEW_PASSWORD = "Un tout nouveau mot de passe 2027"
CODE = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")


def cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(list(argv)) == 0, out.getvalue()
    return out.getvalue()


def code_mails(live: LiveGateway) -> list[tuple[str, bytes]]:
    """(recipient domain, message) of every mail queued for a personal address."""
    svc = live.services
    with svc.db.read() as s:
        rows = list(s.execute(select(QueueEntry).where(QueueEntry.kind == "notification")
                              .order_by(QueueEntry.id)).scalars())
        return [(r.domain, svc.keys.system_by_id(s, r.data_key_id).open(MSG_PURPOSE, r.uuid, r.message_sealed))  # type: ignore[arg-type]
                for r in rows]


def wait_for_mails(live: LiveGateway, count: int) -> list[tuple[str, bytes]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = code_mails(live)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} queued mails, found {len(code_mails(live))}")


def code_in(message: bytes) -> str:
    body = email.message_from_bytes(message, policy=email.policy.default).get_content()
    found = CODE.search(body)
    assert found, body
    return found.group(0)


def ask_for_code(client: httpx.Client, ins: str) -> httpx.Response:
    token = csrf_of(client.get("/mot-de-passe-oublie").text)
    return client.post("/mot-de-passe-oublie", data={"ins": ins, "csrf": token})


def recover_http(live: LiveGateway, ins: str, code: str) -> tuple[str, str]:
    """Use a new code on an activated space: (new TOTP secret, the code typed at enrolment)."""
    with httpx.Client(base_url=base_url(live), follow_redirects=True) as c:
        r = c.post("/activation", data={"ins": ins, "code": code, "csrf": csrf_of(c.get("/activation").text)})
        assert r.status_code == 200 and "Choisir un nouveau mot de passe" in html.unescape(r.text), r.text[:500]
        r = c.post("/activation/mot-de-passe", data={"password": NEW_PASSWORD, "confirmation": NEW_PASSWORD,
                                                     "csrf": csrf_of(r.text)})
        found = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', r.text)
        assert found, r.text[:500]
        secret = found.group(1).replace(" ", "")
        typed = totp_now(secret)
        r = c.post("/activation/double-authentification", data={"code": typed, "csrf": csrf_of(r.text)})
        page = html.unescape(r.text)
        assert r.status_code == 200 and "Mes messages" in page and "Toutes vos autres sessions" in page
        return secret, typed


@contextlib.contextmanager
def logged_in(live: LiveGateway, ins: str, secret: str) -> Iterator[httpx.Client]:
    """A session with the new password and the new TOTP secret (next step: the enrolment used this one)."""
    with httpx.Client(base_url=base_url(live), follow_redirects=True) as c:
        r = c.post("/connexion", data={"ins": ins, "password": NEW_PASSWORD, "code": totp_now(secret, ahead=1),
                                       "csrf": csrf_of(c.get("/connexion").text)})
        assert r.status_code == 200 and "Mes messages" in r.text, r.text[:300]
        yield c


def login_status(live: LiveGateway, ins: str, password: str, code: str) -> int:
    with httpx.Client(base_url=base_url(live)) as c:
        r = c.post("/connexion", data={"ins": ins, "password": password, "code": code,
                                       "csrf": csrf_of(c.get("/connexion").text)})
        return r.status_code


def test_forgot_page_answers_the_same_whatever_the_ins(site: Site) -> None:
    live, home = site.live, str(site.home)
    with_mail, without_mail, unknown = new_ins(), new_ins(), new_ins()
    cli("--home", home, "patient", "add", with_mail, "--open", "--email", "oubli@perso.example")
    cli("--home", home, "patient", "add", without_mail, "--open")
    before = len(code_mails(live))
    with httpx.Client(base_url=base_url(live)) as client:
        login_page = client.get("/connexion").text
        assert 'href="/mot-de-passe-oublie"' in login_page and "Mot de passe oublié" in html.unescape(login_page)
        answers = [ask_for_code(client, ins) for ins in (with_mail, without_mail, unknown)]
        assert {r.status_code for r in answers} == {200}
        assert len({r.text for r in answers}) == 1  # same page, same token: nothing tells them apart
        assert "un nouveau code d'activation vient d'y être envoyé" in html.unescape(answers[0].text)
        mails = wait_for_mails(live, before + 1)
        again = ask_for_code(client, with_mail)  # too soon: the same answer, no second mail
        assert again.text == answers[0].text
        bad = ask_for_code(client, "123456789")
        assert bad.status_code == 400 and "pas valide" in html.unescape(bad.text)
    time.sleep(0.5)
    assert len(code_mails(live)) == before + 1
    domain, message = mails[-1]
    assert domain == "perso.example" and b"oubli@perso.example" in message and with_mail.encode() not in message
    with live.services.db.read() as s:
        patient = s.execute(select(Patient).where(ins_index.match(live.services.keys, s, with_mail))).scalar_one()
        assert patient.state == "open" and patient.code_mailed_at is not None


def test_a_new_code_replaces_password_and_totp_keeps_mail_and_ends_sessions(site: Site) -> None:
    live, world, home = site.live, site.world, str(site.home)
    ins = new_ins()
    account = activate_http(live, ins, provision(site.home, ins))
    pro_sends(live, world, ins, subject="Compte rendu avant la perte du téléphone")
    with live.services.db.read() as s:
        activated_at = s.execute(select(Patient.activated_at)
                                 .where(ins_index.match(live.services.keys, s, ins))).scalar_one()
    with login_http(live, account) as old_session:
        out = cli("--home", home, "patient", "new-code", ins)
        code = CODE.search(out)
        assert code, out
        secret, typed = recover_http(live, ins, code.group(0))
        r = old_session.get("/")  # every earlier session is over
        assert "/connexion" in str(r.url) and "Mes messages" not in r.text
    assert login_status(live, ins, PATIENT_PASSWORD, totp_now(account.secret, ahead=1)) == 401  # old credentials
    assert login_status(live, ins, NEW_PASSWORD, typed) == 401  # the enrolment code is not replayable
    with logged_in(live, ins, secret) as c:
        inbox = html.unescape(c.get("/").text)
        assert "Compte rendu avant la perte du téléphone" in inbox  # nothing of the mailbox is lost
        history = html.unescape(c.get("/mon-espace/historique").text)
        assert "Un administrateur a émis un nouveau code d'activation" in history
        assert "Nouveau mot de passe et nouvelle application d'authentification enregistrés" in history
    with httpx.Client(base_url=base_url(live)) as c:  # the code was used once
        r = c.post("/activation", data={"ins": ins, "code": code.group(0), "csrf": csrf_of(c.get("/activation").text)})
        assert r.status_code == 401
    with live.services.db.read() as s:
        patient = s.execute(select(Patient).where(ins_index.match(live.services.keys, s, ins))).scalar_one()
        assert patient.state == "open" and patient.activated_at == activated_at
        assert patient.activation_code_hash is None
        found, _ = audit_links.entries_about(s, live.services.keys, patient.id, subject_only=True)
        recovered = [o.details_dict() for e, o in found if e.action == "patient.recover"]
    # the session left by the first activation and the login: not the one enrolling (web_sessions.count_for)
    assert recovered == [{"sessions_ended": 2}]


def test_self_service_code_by_mail_recovers_the_space(site: Site) -> None:
    live, world, home = site.live, site.world, str(site.home)
    ins = new_ins()
    first = CODE.search(cli("--home", home, "patient", "add", ins, "--email", "perdu@perso.example"))
    assert first
    activate_http(live, ins, first.group(0))
    pro_sends(live, world, ins, subject="Ordonnance renouvelée")
    before = len(code_mails(live))
    with httpx.Client(base_url=base_url(live)) as client:
        assert ask_for_code(client, ins).status_code == 200
    _, message = wait_for_mails(live, before + 1)[-1]
    assert b"perdu@perso.example" in message and b"Ordonnance" not in message
    secret, _ = recover_http(live, ins, code_in(message))
    with logged_in(live, ins, secret) as c:
        assert "Ordonnance renouvelée" in html.unescape(c.get("/").text)
        history = html.unescape(c.get("/mon-espace/historique").text)
        assert "Nouveau code d'activation demandé (« Mot de passe oublié ») (envoyé à votre adresse personnelle)" \
            in history


def test_a_provisioned_space_stays_provisioned_until_the_new_code_is_used(site: Site) -> None:
    live, home = site.live, str(site.home)
    ins = new_ins()
    letter = provision(site.home, ins)
    code = CODE.search(cli("--home", home, "patient", "new-code", ins))
    assert code
    with live.services.db.read() as s:
        assert s.execute(select(Patient.state)
                         .where(ins_index.match(live.services.keys, s, ins))).scalar_one() == "provisioned"
    with httpx.Client(base_url=base_url(live)) as c:
        r = c.post("/activation", data={"ins": ins, "code": letter, "csrf": csrf_of(c.get("/activation").text)})
        assert r.status_code == 401  # the letter's code was replaced
    activate_http(live, ins, code.group(0))
    with live.services.db.read() as s:
        patient = s.execute(select(Patient).where(ins_index.match(live.services.keys, s, ins))).scalar_one()
        assert patient.state == "open" and patient.activated_at is not None
        assert patient.activated_at <= datetime.now(UTC)
