"""DKIM signing of outgoing mail by its From: domain (issue 17 item 3), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from crypto.dkim import pinned_dnsfunc, verify_message
from crypto.dkim_keys import dns_txt_record
from gateway.accounts.signing_keys import ensure_key, published, signing_key
from gateway.outbound.signing import author_domain, sign_outgoing
from gateway.testing.store import Store
from tests.outbound.peer import add_signing_domain

MESSAGE = b"From: dr@clinic.test\r\nTo: a@remote.test\r\nSubject: test\r\nMessage-ID: <m1@clinic.test>\r\n\r\nhello\r\n"
MDN = (b"From: 253072A07300443@patients.test\r\nTo: dr@remote.test\r\nSubject: Accuse de lecture\r\n"
       b"Message-ID: <mdn1@mx.test>\r\nAuto-Submitted: auto-replied\r\n\r\naffiche\r\n")
OWN = frozenset({"patients.test", "mx.test"})


def verifies(signed: bytes, selector: str, domain: str, public_key: str) -> bool:
    result = verify_message(signed, dnsfunc=pinned_dnsfunc(selector, domain, dns_txt_record(public_key)))
    return result.ok and result.domain == domain


def test_a_hosted_domain_signs_by_the_from_domain(store: Store) -> None:
    with store.db.write() as s:
        txt = add_signing_domain(s, store.keys, "clinic.test", "s2026")
    store.keys.forget()
    signed = sign_outgoing(store.db, store.keys, MESSAGE, own_domains=OWN)
    assert signed.startswith(b"DKIM-Signature:") and signed.endswith(MESSAGE)
    result = verify_message(signed, dnsfunc=pinned_dnsfunc("s2026", "clinic.test", txt))
    assert result.ok and result.domain == "clinic.test", result.reason
    tampered = signed.replace(b"hello", b"HELLO")
    assert not verify_message(tampered, dnsfunc=pinned_dnsfunc("s2026", "clinic.test", txt)).ok


def test_never_signs_for_a_domain_that_is_not_ours(store: Store) -> None:
    other = MESSAGE.replace(b"From: dr@clinic.test", b"From: someone@other.test")
    assert sign_outgoing(store.db, store.keys, other, own_domains=OWN) == other
    with store.db.read() as s:
        assert published(s) == []  # and no key was made for it


def test_the_patient_domain_gets_a_key_on_first_use(store: Store) -> None:
    """A read receipt (null reverse-path, From: the patient) is signed with the patient domain's key."""
    signed = sign_outgoing(store.db, store.keys, MDN, own_domains=OWN)
    with store.db.read() as s:
        [key] = published(s)
        opened = signing_key(s, store.keys, "patients.test")
    assert (key.domain, key.source, key.key_type) == ("patients.test", "gateway", "rsa")
    assert key.selector.startswith("hmg") and opened is not None and opened.private_pem
    assert verifies(signed, key.selector, "patients.test", key.public_key)
    again = sign_outgoing(store.db, store.keys, MDN, own_domains=OWN)
    assert verifies(again, key.selector, "patients.test", key.public_key)
    with store.db.read() as s:
        assert published(s) == [key]  # the same key, not a new one per message


def test_ensure_key_keeps_hosted_keys_and_makes_one_per_domain(store: Store) -> None:
    with store.db.write() as s:
        add_signing_domain(s, store.keys, "clinic.test", "s2026")
        hosted = ensure_key(s, store.keys, "clinic.test")
        made = ensure_key(s, store.keys, "mx.test", key_type="ed25519")
        same = ensure_key(s, store.keys, "mx.test")
    assert (hosted.source, hosted.selector) == ("hosted", "s2026")
    assert made == same and made.key_type == "ed25519"
    with store.db.read() as s:
        assert [(k.domain, k.source) for k in published(s)] == [("clinic.test", "hosted"), ("mx.test", "gateway")]
    dsn = MDN.replace(b"From: 253072A07300443@patients.test", b"From: MAILER-DAEMON@mx.test")
    signed = sign_outgoing(store.db, store.keys, dsn, own_domains=OWN)
    assert b"a=ed25519-sha256" in signed and verifies(signed, made.selector, "mx.test", made.public_key)


def test_two_nodes_making_the_key_at_once_share_one(store: Store) -> None:
    """The first transaction holds its new key uncommitted while another node needs one too."""
    results: list[bytes] = []
    holding = store.db.write()
    session = holding.__enter__()
    first = ensure_key(session, store.keys, "patients.test")
    other = threading.Thread(target=lambda: results.append(sign_outgoing(store.db, store.keys, MDN, own_domains=OWN)))
    other.start()
    other.join(0.5)  # it waits on the row (PostgreSQL) or the write lock (SQLite)
    holding.__exit__(None, None, None)
    other.join(30)
    assert not other.is_alive() and len(results) == 1
    assert verifies(results[0], first.selector, "patients.test", first.public_key)
    with store.db.read() as s:
        assert len(published(s)) == 1


def test_author_domain() -> None:
    assert author_domain(MESSAGE) == "clinic.test"
    assert author_domain(b"From: Dr X <X@Clinic.TEST>\r\n\r\n") == "clinic.test"
    assert author_domain(b"From: a@x.test, b@y.test\r\n\r\n") is None
    assert author_domain(b"From: a@x.test\r\nFrom: b@x.test\r\n\r\n") is None
    assert author_domain(b"To: a@x.test\r\n\r\n") is None
    assert author_domain(b"From: not an address\r\n\r\n") is None
    assert author_domain("From: médecin@hôpital.test\r\n\r\n".encode()) == "xn--hpital-ixa.test"
