"""Clear refusals for bad client certificates on the MX (issue 17 item 5).

A client certificate that does not verify (self-signed, another issuer, expired) used to
make the TLS handshake fail: the operator's MTA saw "lost connection" and retried for days.
The MX now completes the handshake, and refuses every ``MAIL FROM`` of that session with a
``550 5.7.1`` naming the reason, so the operator's MTA bounces with a reply it can read. A
verified certificate is bound to its operator's trust entry as before.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mx_client, transaction
from gateway.testing.world import PEER_DN_ORG, World, issue_client_cert, populate, self_signed_client_cert

UNTRUSTED = (550, "5.7.1 client certificate not trusted: untrusted issuer")
EXPIRED = (550, "5.7.1 client certificate not trusted: certificate expired")
MISMATCH = (550, "5.7.1 client certificate does not match the trusted operator of the sender domain")


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def context(live: LiveGateway, cert: object = None, key: object = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=live.ca_file)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_self_signed_certificate_with_the_operator_dn_completes_tls_and_is_refused_at_mail(
        world_live: tuple[World, LiveGateway], caplog: pytest.LogCaptureFixture) -> None:
    """Was: the handshake failed (the client saw the connection dropped)."""
    world, live = world_live
    cert, key, dn = self_signed_client_cert(world.home / "selfsigned", f"mx.{world.peer.domain}", PEER_DN_ORG)
    assert dn == world.peer.dn  # the right subject, the wrong issuer
    with caplog.at_level(logging.INFO, logger="gateway.smtp"), mx_client(live, context(live, cert, key)) as client:
        assert isinstance(client.sock, ssl.SSLSocket) and client.sock.version() is not None  # TLS is up
        assert transaction(client, f"dr.b@{world.peer.domain}", [world.pro], None).mail == UNTRUSTED
        assert transaction(client, "", [world.pro], None).mail == UNTRUSTED  # the null sender too
        assert client.noop()[0] == 250  # the session goes on: nothing else to retry on
    refusals = [r for r in caplog.records if r.getMessage() == "mail refused"]
    assert refusals and {getattr(r, "reason", None) for r in refusals} == {"mail.certificate_untrusted"}


def test_expired_certificate_of_the_test_ca_is_refused_as_expired(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    issued = datetime.now(UTC) - timedelta(days=400)
    cert, key, dn = issue_client_cert(world.home, world.home / "expired", f"mx.{world.peer.domain}", PEER_DN_ORG,
                                      issued=issued, days=30)
    assert dn == world.peer.dn
    with mx_client(live, context(live, cert, key)) as client:
        assert transaction(client, f"dr.b@{world.peer.domain}", [world.pro], None).mail == EXPIRED


def test_valid_certificate_not_bound_to_the_domain_gets_the_existing_refusal(
        world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    cert, key, _ = issue_client_cert(world.home, world.home / "other", "mx.other.example", "Other Operator")
    with mx_client(live, context(live, cert, key)) as client:
        assert transaction(client, f"dr.b@{world.peer.domain}", [world.pro], None).mail == MISMATCH


def test_no_certificate_is_as_before(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with mx_client(live, context(live)) as client:
        assert transaction(client, f"dr.b@{world.peer.domain}", [world.pro], None).mail == MISMATCH
        assert transaction(client, "", [world.pro], None).mail == (550, "5.7.1 sender domain is not in the trust space")


def test_the_operator_certificate_still_works(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with mx_client(live, world.peer.client_context(live.ca_file)) as client:
        assert transaction(client, f"dr.b@{world.peer.domain}", [world.pro], None).mail == (250, "2.1.0 sender OK")
