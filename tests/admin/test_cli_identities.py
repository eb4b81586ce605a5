"""``gateway pro add --type``, ``pro identity|grant|revoke|cert|bindings|password-login`` in
process against a populated home (both stores), and the lookups the SASL mechanisms call
(:mod:`gateway.accounts.identities`) on what the commands bound (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from gateway.accounts import identities as ids
from gateway.store.models import AuditEntry
from gateway.testing.world import World, issue_client_cert, self_signed_client_cert
from tests.admin.conftest import cli, opened

SUBJECT = "899700000001"  # synthetic, RPPS-like


def _bindings(world: World, address: str) -> dict[str, object]:
    code, out, err = cli(world.home, "pro", "bindings", address, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert isinstance(info, dict)
    return info


def _add(world: World, address: str, kind: str) -> None:
    code, out, err = cli(world.home, "pro", "add", address, "--type", kind)
    assert code == 0, err
    assert f"account {address} added ({kind})" in out


def test_types_identities_grants_and_the_lookups(world: World) -> None:
    _add(world, "secretariat@clinic.test", "organisational")
    _add(world, "lab@clinic.test", "organisational")
    assert _bindings(world, world.pro)["type"] == "personal"  # existing accounts
    code, out, _ = cli(world.home, "pro", "list", "--json")
    assert {r["address"]: r["type"] for r in json.loads(out)}["secretariat@clinic.test"] == "organisational"

    code, out, err = cli(world.home, "pro", "identity", "add", world.pro, SUBJECT)
    assert code == 0, err
    assert f"identity:       {SUBJECT}" in out
    assert cli(world.home, "pro", "grant", "secretariat@clinic.test", world.pro)[0] == 0
    assert cli(world.home, "pro", "grant", "lab@clinic.test", world.pro)[0] == 0
    assert cli(world.home, "pro", "grant", "lab@clinic.test", world.pro)[0] == 0  # again: no change
    assert cli(world.home, "pro", "revoke", "lab@clinic.test", world.pro)[0] == 0
    assert _bindings(world, "secretariat@clinic.test")["grantees"] == [world.pro]
    assert _bindings(world, world.pro)["granted"] == ["secretariat@clinic.test"]

    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailboxes_for_identity(session, SUBJECT) == [world.pro, "secretariat@clinic.test"]
        assert ids.mailboxes_for_identity(session, "800000000000") == []
        assert ids.may_open(session, SUBJECT, world.pro.upper()) == ids.Decision(True, ids.OK_PERSONAL, world.pro)
        decision = ids.may_open(session, SUBJECT, "secretariat@clinic.test")
        assert decision and decision.reason == ids.OK_GRANTED
        assert ids.may_open(session, SUBJECT, "lab@clinic.test") == ids.Decision(False, ids.NO_MAILBOX)
        assert ids.may_open(session, SUBJECT, world.colleague).reason == ids.NO_MAILBOX
        assert not ids.may_open(session, "800000000000", world.pro)
        assert ids.may_open(session, "800000000000", world.pro).reason == ids.NO_SUBJECT

    # a disabled organisational mailbox is no longer opened; a disabled personal one opens nothing
    assert cli(world.home, "pro", "disable", "secretariat@clinic.test")[0] == 0
    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailboxes_for_identity(session, SUBJECT) == [world.pro]
    assert cli(world.home, "pro", "disable", world.pro)[0] == 0
    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailboxes_for_identity(session, SUBJECT) == []
        assert ids.may_open(session, SUBJECT, world.pro).reason == ids.NO_SUBJECT
    assert cli(world.home, "pro", "enable", world.pro)[0] == 0

    code, _, err = cli(world.home, "pro", "identity", "remove", world.pro, SUBJECT)
    assert code == 0, err
    assert _bindings(world, world.pro)["identity"] is None
    with opened(world.home) as svc, svc.db.read() as session:
        actions = [(e.action, e.subject_ref, json.loads(e.details or "{}").get("grantee"))
                   for e in session.execute(select(AuditEntry).where(AuditEntry.action.like("pro.%"))
                                            .order_by(AuditEntry.id)).scalars()
                   if e.action not in ("pro.disable", "pro.enable")]
        assert SUBJECT not in json.dumps([e.details for e in session.execute(select(AuditEntry)).scalars()])
    assert actions[-6:] == [
        ("pro.add", "pro:lab@clinic.test", None), ("pro.identity.add", f"pro:{world.pro}", None),
        ("pro.grant", "pro:secretariat@clinic.test", world.pro), ("pro.grant", "pro:lab@clinic.test", world.pro),
        ("pro.revoke", "pro:lab@clinic.test", world.pro), ("pro.identity.remove", f"pro:{world.pro}", None)]


def test_refusals_are_clear(world: World) -> None:
    _add(world, "secretariat@clinic.test", "organisational")
    _add(world, "robot@clinic.test", "application")
    code, _, err = cli(world.home, "pro", "add", "x@clinic.test", "--type", "shared")
    assert code == 2 and "invalid choice" in err
    assert cli(world.home, "pro", "identity", "add", world.pro, SUBJECT)[0] == 0
    cases = [
        (("identity", "add", world.colleague, SUBJECT), f"identity already bound to {world.pro}"),
        (("identity", "add", world.pro, "800000000002"), f"{world.pro} already has an identity"),
        (("identity", "add", "secretariat@clinic.test", "800000000003"),
         "identity: secretariat@clinic.test is not a personal mailbox (it is organisational)"),
        (("identity", "add", world.colleague, "8 00"), "printable characters without spaces"),
        (("identity", "remove", world.colleague, SUBJECT), f"that identity is not bound to {world.colleague}"),
        (("identity", "add", "nobody@clinic.test", "800000000004"), "no professional account nobody@clinic.test"),
        (("grant", world.colleague, world.pro),
         f"grant: {world.colleague} is not an organisational mailbox (it is personal)"),
        (("grant", "secretariat@clinic.test", "robot@clinic.test"),
         "grantee: robot@clinic.test is not a personal mailbox (it is application)"),
        (("revoke", "secretariat@clinic.test", world.pro), f"{world.pro} is not granted secretariat@clinic.test"),
        (("password-login", world.pro, "perhaps"), "true or false expected"),
    ]
    for args, message in cases:
        code, _, err = cli(world.home, "pro", *args)
        assert code == 1 and message in err, (args, err)


def test_application_certificates(world: World, tmp_path: Path) -> None:
    _add(world, "robot@clinic.test", "application")
    _add(world, "robot2@clinic.test", "application")
    pem, _, dn = issue_client_cert(world.home, tmp_path / "c", "robot.clinic.test", "Clinic robots")
    other, _, _ = self_signed_client_cert(tmp_path / "s", "other.clinic.test", "Elsewhere")
    der = x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)
    hexa = ids.fingerprint(der)
    code, out, err = cli(world.home, "pro", "cert", "add", world.pro, str(pem))
    assert code == 1 and f"certificate: {world.pro} is not an application mailbox (it is personal)" in err
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    code, _, err = cli(world.home, "pro", "cert", "add", "robot@clinic.test", str(bad))
    assert code == 1 and "not a readable X.509 certificate" in err
    code, out, err = cli(world.home, "pro", "cert", "add", "robot@clinic.test", str(pem))
    assert code == 0, err
    assert hexa in out and dn in out
    certs = _bindings(world, "robot@clinic.test")["certificates"]
    assert isinstance(certs, list) and certs[0]["fingerprint"] == hexa and certs[0]["subject"] == dn
    assert certs[0]["issuer"] == x509.load_pem_x509_certificate(pem.read_bytes()).issuer.rfc4514_string()

    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailbox_for_certificate(session, der) == ids.Decision(True, ids.OK_CERTIFICATE,
                                                                         "robot@clinic.test")
        assert ids.mailbox_for_certificate(session, hexa.upper(), "ROBOT@clinic.test").address == "robot@clinic.test"
        assert ids.mailbox_for_certificate(session, der, "robot2@clinic.test").reason == ids.NOT_BOUND
        other_der = x509.load_pem_x509_certificate(other.read_bytes()).public_bytes(Encoding.DER)
        assert ids.mailbox_for_certificate(session, other_der).reason == ids.NO_CERTIFICATE
    assert cli(world.home, "pro", "cert", "add", "robot2@clinic.test", str(pem))[0] == 0
    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailbox_for_certificate(session, der).reason == ids.NO_AUTHZID  # two mailboxes: name one
        assert ids.mailbox_for_certificate(session, der, "robot2@clinic.test").ok
    code, _, err = cli(world.home, "pro", "cert", "remove", "robot2@clinic.test", ":".join(
        hexa[i:i + 2] for i in range(0, 64, 2)))
    assert code == 0, err
    code, _, err = cli(world.home, "pro", "cert", "remove", "robot@clinic.test", str(pem))
    assert code == 0, err
    code, _, err = cli(world.home, "pro", "cert", "remove", "robot@clinic.test", str(pem))
    assert code == 1 and "that certificate is not bound to robot@clinic.test" in err
    with opened(world.home) as svc, svc.db.read() as session:
        assert ids.mailbox_for_certificate(session, der).reason == ids.NO_CERTIFICATE
        actions = [e.action for e in session.execute(select(AuditEntry).where(AuditEntry.action.like("pro.cert.%"))
                                                     .order_by(AuditEntry.id)).scalars()]
    assert actions == ["pro.cert.add", "pro.cert.add", "pro.cert.remove", "pro.cert.remove"]


def test_removing_an_account_removes_its_bindings(world: World) -> None:
    _add(world, "secretariat@clinic.test", "organisational")
    assert cli(world.home, "pro", "identity", "add", world.colleague, SUBJECT)[0] == 0
    assert cli(world.home, "pro", "grant", "secretariat@clinic.test", world.colleague)[0] == 0
    code, _, err = cli(world.home, "pro", "remove", world.colleague, "--yes")
    assert code == 0, err
    assert _bindings(world, "secretariat@clinic.test")["grantees"] == []
    assert cli(world.home, "pro", "identity", "add", world.pro, SUBJECT)[0] == 0  # the subject is free again
