"""Account recovery in headless Chromium (issue 14).

A patient who lost the phone gets a new code from a mediator at the console, sets a new password
and a new TOTP application, and reads the old messages; nothing the mediator's browser was shown
holds the message's subject or correspondent; the patient's history shows the mediator's action.
The same through the e-mail path: the mediator sends the code to the address on file, and the
patient asks for one on "Mot de passe oublié"; the gateway's queue worker delivers the mail
through ``queue.notification_relay`` to a loopback SMTP sink, where the test reads the code.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from gateway.accounts import mediators
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import free_port
from gateway.testing.sink import Sink, running_sink
from gateway.testing.world import World, issue_client_cert, populate
from tests.web.browser_kit import review
from tests.web.kit import activate_http, new_ins, pro_sends, provision, totp_now
from tests.web.test_recovery import CODE, cli

HELPER_PASSWORD = "une phrase de médiation"
NEW_PASSWORD = "Mon nouveau téléphone, mon nouveau mot de passe"
_names = (f"guichet{i}" for i in itertools.count(1))


@dataclass
class Desk:
    home: Path
    world: World
    live: LiveGateway
    sink: Sink

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.live.port('http')}"


@dataclass
class Helper:
    name: str
    totp: pyotp.TOTP
    pages: list[str] = field(default_factory=list)  # every page the mediator's browser showed


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    root = tmp_path_factory.mktemp("recovery-browser")
    relay = free_port()
    home = make_home(root / "home", extra_config=f'\n[queue]\nnotification_relay = "127.0.0.1:{relay}"\n'
                                                  "worker_interval_seconds = 0.5\n")
    world = populate(home)
    cert, key, _ = issue_client_cert(home, root / "relay", "127.0.0.1", "Relais de courriel de test")
    with pytest.MonkeyPatch.context() as env:
        # The relay's certificate is verified against the system CAs: here, the test CA.
        env.setenv("SSL_CERT_FILE", str(home / "tls" / "ca.pem"))
        with running_sink(relay, str(cert), str(key)) as sink, live_gateway(home, outbound=True) as live:
            yield Desk(home, world, live, sink)


def add_helper(desk: Desk) -> Helper:
    name = next(_names)
    with desk.live.services.db.write() as s:
        created = mediators.add_mediator(s, desk.live.services.keys, name, HELPER_PASSWORD,
                                         organisation="France Services de test", now=datetime.now(UTC))
    return Helper(name, pyotp.TOTP(created.totp_secret))


def mediator_logs_in(page: Page, desk: Desk, helper: Helper) -> None:
    page.goto(desk.url + "/admin/")
    expect(page).to_have_url(desk.url + "/admin/login")
    page.get_by_label("Identifiant").fill(helper.name)
    page.get_by_label("Mot de passe").fill(HELPER_PASSWORD)
    page.get_by_label("Code à usage unique").fill(helper.totp.now())
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Aide à la connexion d'un patient")).to_be_visible()
    helper.pages.append(page.content())


def mediator_finds(page: Page, helper: Helper, ins: str, state: str) -> None:
    page.get_by_label("Numéro INS du patient").fill(ins)
    page.get_by_role("button", name="Rechercher").click()
    expect(page.locator("#space-state")).to_have_text(state)
    helper.pages.append(page.content())


def patient_recovers(page: Page, desk: Desk, ins: str, code: str) -> str:
    """From the activation page with the new code to the inbox; returns the new TOTP secret."""
    page.goto(desk.url + "/activation")
    page.get_by_label("Numéro INS").fill(ins)
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_role("button", name="Continuer").click()
    expect(page.get_by_role("heading", name="Choisir un nouveau mot de passe")).to_be_visible()
    page.get_by_label("Nouveau mot de passe").fill(NEW_PASSWORD)
    page.get_by_label("Confirmer le mot de passe").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Continuer").click()
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    page.get_by_label("Code à 6 chiffres").fill(totp_now(secret))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("heading", name="Mes messages").wait_for()
    expect(page.get_by_role("status")).to_contain_text("Toutes vos autres sessions ont été fermées")
    return secret


def patient_reads(page: Page, subject: str) -> None:
    page.locator("ul.threads li a", has_text=subject).first.click()
    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    page.get_by_role("heading", name=subject).wait_for()
    expect(page.locator(".text-mail")).to_contain_text("voici vos")


def history_of(page: Page, desk: Desk) -> str:
    page.goto(desk.url + "/mon-espace/historique")
    return page.locator("main").inner_text()


def codes_received(desk: Desk, to: str) -> list[str]:
    """The activation codes in the mails the relay received for ``to`` (the new-message
    notifications, which go there too, carry none)."""
    with desk.sink.lock:
        mails = [m for m in desk.sink.messages if f"To: {to}".encode() in m]
    bodies = [email.message_from_bytes(m, policy=email.policy.default).get_content() for m in mails]
    return [found.group(0) for found in map(CODE.search, bodies) if found]


def code_from_sink(desk: Desk, to: str) -> str:
    """The code of the first mail with one that reached the relay for ``to`` (bounded wait)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        codes = codes_received(desk, to)
        if codes:
            assert len(codes) == 1, codes
            return codes[0]
        time.sleep(0.2)
    raise AssertionError(f"no code for {to} reached the relay within 60 s")


def activated_patient(desk: Desk, subject: str, email_address: str | None) -> str:
    ins = new_ins()
    if email_address is None:
        code = provision(desk.home, ins)
    else:
        found = CODE.search(cli("--home", str(desk.home), "patient", "add", ins, "--email", email_address))
        assert found
        code = found.group(0)
    activate_http(desk.live, ins, code)
    pro_sends(desk.live, desk.world, ins, subject=subject)
    return ins


def assert_mediator_saw_no_content(helper: Helper, desk: Desk, subject: str, email_address: str | None) -> None:
    assert len(helper.pages) >= 3  # login, lookup, the code issued (and more)
    for html in helper.pages:
        assert subject not in html
        assert desk.world.pro not in html and "Dr Martin" not in html  # no correspondent
        if email_address:
            assert email_address not in html  # not even the address on file


def test_lost_phone_mediator_issues_a_code_in_person(desk: Desk, browser: Any) -> None:
    subject = "Résultats du bilan sanguin de novembre"
    # the patient's old phone: a session from before the loss
    ins = new_ins()
    letter = provision(desk.home, ins)
    old = browser.new_context(locale="fr-FR")
    patient_page = old.new_page()
    try:
        patient_page.goto(desk.url + "/activation")
        patient_page.get_by_label("Numéro INS").fill(ins)
        patient_page.get_by_label("Code d'activation").fill(letter)
        patient_page.get_by_role("button", name="Continuer").click()
        patient_page.get_by_label("Nouveau mot de passe").fill("Une phrase de passe bien longue 42")
        patient_page.get_by_label("Confirmer le mot de passe").fill("Une phrase de passe bien longue 42")
        patient_page.get_by_role("button", name="Continuer").click()
        old_secret = patient_page.locator("code.secret").inner_text().replace(" ", "")
        patient_page.get_by_label("Code à 6 chiffres").fill(totp_now(old_secret))
        patient_page.get_by_role("button", name="Valider").click()
        patient_page.get_by_role("heading", name="Mes messages").wait_for()
        pro_sends(desk.live, desk.world, ins, subject=subject)

        # at the France Services desk
        helper = add_helper(desk)
        mediator = browser.new_context(locale="fr-FR")
        page = mediator.new_page()
        try:
            mediator_logs_in(page, desk, helper)
            mediator_finds(page, helper, ins, "ouvert")
            by_mail = page.get_by_role("button", name="Envoyer un code à l'adresse personnelle enregistrée")
            expect(by_mail).to_have_count(0)  # no address on file
            page.get_by_role("button", name="Émettre un code à remettre en main propre").click()
            code = page.locator("#issued-code").inner_text()
            helper.pages.append(page.content())
            assert CODE.fullmatch(code)
            review(browser, desk.url + "/admin/mediation", "mediation", mediator.storage_state())
            page.goto(desk.url + "/admin/audit")  # anything else is refused
            expect(page.get_by_role("alert")).to_contain_text("réservée aux administrateurs")
            helper.pages.append(page.content())
        finally:
            mediator.close()
        assert_mediator_saw_no_content(helper, desk, subject, None)

        # on a new phone
        review(browser, desk.url + "/mot-de-passe-oublie", "forgot")
        fresh = browser.new_context(locale="fr-FR")
        try:
            page = fresh.new_page()
            page.goto(desk.url + "/connexion")
            page.get_by_role("link", name="Mot de passe oublié / téléphone perdu ?").click()
            heading = page.get_by_role("heading", name="Sans adresse personnelle, ou sans accès à celle-ci")
            expect(heading).to_be_visible()
            patient_recovers(page, desk, ins, code)
            patient_reads(page, subject)
            assert "Un médiateur a émis un nouveau code d'activation" in history_of(page, desk)
        finally:
            fresh.close()
        patient_page.goto(desk.url + "/")  # the old phone's session is over
        expect(patient_page).to_have_url(re.compile(r"/connexion"))
    finally:
        old.close()


def test_lost_phone_code_by_email_from_a_mediator_and_from_the_forgot_page(desk: Desk, browser: Any) -> None:
    subject = "Compte rendu de consultation du 12 novembre"
    address = "lea.martin@perso.example"
    ins = activated_patient(desk, subject, address)
    helper = add_helper(desk)
    mediator = browser.new_context(locale="fr-FR")
    try:
        page = mediator.new_page()
        mediator_logs_in(page, desk, helper)
        mediator_finds(page, helper, ins, "ouvert")
        expect(page.locator("#space-email")).to_have_text("oui")
        page.get_by_role("button", name="Envoyer un code à l'adresse personnelle enregistrée").click()
        expect(page.locator("#issued")).to_contain_text("envoyé à l'adresse personnelle enregistrée")
        helper.pages.append(page.content())
    finally:
        mediator.close()
    assert_mediator_saw_no_content(helper, desk, subject, address)
    code = code_from_sink(desk, address)
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        patient_recovers(page, desk, ins, code)
        patient_reads(page, subject)
        assert ("Un médiateur a émis un nouveau code d'activation (envoyé à votre adresse personnelle)"
                in history_of(page, desk))
    finally:
        context.close()

    # self-service: "Mot de passe oublié" on the login page
    subject2 = "Ordonnance de kinésithérapie"
    address2 = "paul.durand@perso.example"
    ins2 = activated_patient(desk, subject2, address2)
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(desk.url + "/connexion")
        page.get_by_role("link", name="Mot de passe oublié / téléphone perdu ?").click()
        page.get_by_label("Numéro INS (15 caractères)").fill(ins2)
        page.get_by_role("button", name="Recevoir un nouveau code").click()
        expect(page.get_by_role("status")).to_contain_text("Demande enregistrée")
        code2 = code_from_sink(desk, address2)
        patient_recovers(page, desk, ins2, code2)
        patient_reads(page, subject2)
        assert "Nouveau code d'activation demandé (« Mot de passe oublié »)" in history_of(page, desk)
    finally:
        context.close()
    assert codes_received(desk, address) == [code] and codes_received(desk, address2) == [code2]
    with desk.sink.lock:
        mails = list(desk.sink.messages)
    for raw in mails:  # codes and notifications: never the INS, a subject or a correspondent
        for secret in (ins.encode(), ins2.encode(), subject.encode(), subject2.encode(), desk.world.pro.encode()):
            assert secret not in raw
