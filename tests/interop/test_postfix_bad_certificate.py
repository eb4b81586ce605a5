"""Debian's Postfix as an operator whose client certificate does not verify (issue 17 item 5).

The operator ``hopital.test`` relays to our MX with a self-signed certificate carrying the DN
our trust entry binds. Before, the handshake failed and Postfix saw "lost connection",
deferring the message and retrying for days; now TLS completes, our ``550 5.7.1`` at MAIL FROM
names the reason, and Postfix bounces at once to its own sender with our words.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.testing import postfix
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.postfix import PostfixPeer, Relay, running_postfix
from gateway.testing.world import HOSTED, PEER_DN_ORG, World, populate, self_signed_client_cert
from routing.reasons import MAIL_CERTIFICATE_UNTRUSTED
from tests.conftest import require
from tests.interop.test_postfix_peer import GATEWAY_HOST, OPERATOR, OPERATOR_HOST, letter, new_mid, status_blocks


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway, PostfixPeer]]:
    require(postfix.problem(), "Postfix")
    home = make_home(tmp_path_factory.mktemp("postfix-bad-cert") / "home", hostname=GATEWAY_HOST)
    world = populate(home, peer_domain=OPERATOR)
    cert, key, dn = self_signed_client_cert(home / "self-signed", OPERATOR_HOST, PEER_DN_ORG)
    assert dn == world.peer.dn  # the DN our trust entry binds, the wrong issuer
    env = listen_env()
    mx_host, mx_port = env["GATEWAY__LISTEN__MX"].rsplit(":", 1)
    relay = Relay(domains=(world.patient_domain, HOSTED), host=mx_host, port=int(mx_port), cert_name=GATEWAY_HOST)
    with running_postfix(hostname=OPERATOR_HOST, domain=OPERATOR, users=("secretariat",), relay=relay,
                         cert_file=cert, key_file=key, ca_file=home / "tls" / "ca.pem") as pf, \
            live_gateway(home, env=env) as live:
        yield world, live, pf


def test_postfix_with_an_untrusted_certificate_bounces_with_our_reason(
        rig: tuple[World, LiveGateway, PostfixPeer]) -> None:
    world, _live, pf = rig
    mid = new_mid(OPERATOR)
    sender = pf.address("secretariat")
    pf.send(sender, [world.pro], letter(sender, world.pro, mid))
    raw = pf.wait_message("secretariat", lambda m: b"multipart/report" in m and mid.encode() in m)
    _, blocks = status_blocks(raw)
    [rcpt] = blocks[1:]
    reply = MAIL_CERTIFICATE_UNTRUSTED
    assert (rcpt["Action"], rcpt["Status"]) == ("failed", reply.enhanced), rcpt
    assert " ".join(rcpt["Diagnostic-Code"].split()) == f"smtp; {reply.code} {reply.enhanced} {reply.text}"
    assert pf.queue() == []  # bounced, not deferred
    # Was: "status=deferred (lost connection with 127.0.0.1[127.0.0.1] while performing the EHLO handshake)".
    log = pf.log()
    assert "Verified TLS connection established to 127.0.0.1" in log, pf.log_tail()
    assert "status=bounced" in log and "status=deferred" not in log, pf.log_tail()
