"""SPEC §4 and §6 over the MX listener: TLS, operator certificate, DKIM, alignment, no relay."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import pytest

from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, mx_client, transaction
from gateway.testing.world import World, issue_client_cert, populate


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def peer_message(world: World, to: str, *, author: str | None = None, subject: str = "Compte rendu") -> bytes:
    author = author or f"dr.b@{world.peer.domain}"
    return (f"From: {author}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 08:00:00 +0100\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{world.peer.domain}>\r\n\r\nBonjour,\r\nVoici le compte rendu.\r\n"
            ).encode()


def peer_ctx(world: World, live: LiveGateway) -> ssl.SSLContext:
    return world.peer.client_context(live.ca_file)


def test_signed_message_from_trusted_peer_is_delivered(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    sender = f"dr.b@{world.peer.domain}"
    signed = world.peer.sign(peer_message(world, world.patient()))
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, sender, [world.patient()], signed)
    assert t.mail[0] == 250 and t.rcpts[0][0] == 250
    assert t.data is not None and t.data[0] == 250, t.data
    stored = mailbox_messages(live, ins=world.patients["open"])
    assert len(stored) == before + 1 and stored[-1].endswith(signed)


@pytest.mark.parametrize(
    ("state", "expected"),
    [("provisioned", "5.2.1 mailbox not open"), ("opposed", "5.2.1"), ("closed", "5.2.1"),
     ("unknown", "5.1.1 no such patient mailbox")],
)
def test_patient_mailbox_states_over_mx(world_live: tuple[World, LiveGateway], state: str, expected: str) -> None:
    world, live = world_live
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient(state)], None)
    assert t.rcpts[0][0] == 550 and t.rcpts[0][1].startswith(expected)


def test_tls_required_before_mail(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with mx_client(live, None) as client:
        assert client.has_extn("starttls") and not client.has_extn("auth")
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], None)
    assert t.mail == (530, "5.7.0 must issue STARTTLS first")


def test_untrusted_sender_refused(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, "someone@internet.example", [world.patient()], None)
    assert t.mail == (550, "5.7.1 sender domain is not in the trust space")


@pytest.mark.parametrize("who", ["patient", "hosted"])
def test_our_own_domains_never_arrive_through_mx(world_live: tuple[World, LiveGateway], who: str) -> None:
    world, live = world_live
    sender = world.patient() if who == "patient" else world.pro
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, sender, [world.patient()], None)
    assert t.mail[0] == 550 and t.mail[1].startswith("5.7.1")


def test_no_relay_through_mx(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}",
                        ["x@internet.example", f"other@{world.peer.domain}", world.pro], None)
    assert t.rcpts[0] == (550, "5.7.1 recipient domain is not in the trust space")
    assert t.rcpts[1][0] == 550 and t.rcpts[1][1].startswith("5.7.1")
    assert t.rcpts[2][0] == 250  # a trusted professional may write to a hosted one


def test_certificate_dn_must_match_the_operator(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    cert, key, _ = issue_client_cert(world.home, world.home / "rogue", "mx.rogue.example", "Rogue Operator")
    ctx = ssl.create_default_context(cafile=live.ca_file)
    ctx.load_cert_chain(str(cert), str(key))
    with mx_client(live, ctx) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], None)
    assert t.mail[0] == 550 and t.mail[1].startswith("5.7.1")
    no_cert = ssl.create_default_context(cafile=live.ca_file)
    with mx_client(live, no_cert) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], None)
    assert t.mail[0] == 550


def test_tampered_signature_refused(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    signed = world.peer.sign(peer_message(world, world.patient()))
    tampered = signed.replace(b"Voici le compte rendu.", b"Voici un autre texte.")
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], tampered)
    assert t.data is not None and t.data[0] == 550


def test_spoofed_from_refused(world_live: tuple[World, LiveGateway]) -> None:
    """A trusted peer cannot put another domain (here one of ours) in From:."""
    world, live = world_live
    spoofed = world.peer.sign(peer_message(world, world.patient(), author=world.pro))
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], spoofed)
    assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.1")


def test_suspended_domain_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    from gateway.app.cli.main import main

    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    assert main(["--home", str(home), "domain", "trust", "suspend", world.peer.domain]) == 0
    with live_gateway(home) as live, mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], None)
    assert t.mail[0] == 550 and "suspended" in t.mail[1]
