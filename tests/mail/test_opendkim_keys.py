"""Pinned keys as operators hand them over, end to end through the MX (issue 17 item 4).

Debian's ``opendkim-genkey`` (opendkim-tools) writes the key pair; its ``.txt`` record goes
to ``gateway domain trust add --dkim pinned:SEL:FILE``; a message signed with its
``.private`` key is delivered, an unsigned or altered one refused. The same with an Ed25519
key (RFC 8463) given as a PEM public key.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from crypto.dkim import sign_message
from crypto.dkim_keys import generate_dkim_key
from gateway.app.cli.main import main
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, mx_client, transaction
from gateway.testing.world import World, populate
from tests.conftest import require

RSA_DOMAIN = "opendkim.example"
ED_DOMAIN = "ed25519.example"


@dataclass
class Rig:
    world: World
    live: LiveGateway
    rsa_private: bytes  # the .private file opendkim-genkey wrote
    ed_private: bytes


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require(None if shutil.which("opendkim-genkey") else "opendkim-genkey not found (scripts/system-deps installs "
            "opendkim-tools)", "opendkim-genkey")
    root = tmp_path_factory.mktemp("gw")
    home = make_home(root / "home")
    world = populate(home)
    keys = root / "keys"
    keys.mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(keys), "-s", "mss2026", "-d", RSA_DOMAIN], check=True, timeout=60,
                   capture_output=True)
    txt = (keys / "mss2026.txt").read_text()
    assert txt.startswith("mss2026._domainkey") and '"p=' in txt  # the form the issue reports refused
    ed_private, _ = generate_dkim_key(key_type="ed25519")
    ed_public = serialization.load_pem_private_key(ed_private, None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (keys / "ed.pem").write_bytes(ed_public)
    for domain, spec in ((RSA_DOMAIN, f"pinned:mss2026:{keys / 'mss2026.txt'}"),
                         (ED_DOMAIN, f"pinned:ed1:{keys / 'ed.pem'}")):
        assert main(["--home", str(home), "domain", "trust", "add", domain, "--dkim", spec]) == 0
    with live_gateway(home) as live:
        yield Rig(world, live, (keys / "mss2026.private").read_bytes(), ed_private)


def message(domain: str, to: str) -> bytes:
    return (f"From: Dr B <dr.b@{domain}>\r\nTo: {to}\r\nSubject: Compte rendu\r\n"
            f"Date: Mon, 23 Nov 2026 08:00:00 +0100\r\nMessage-ID: <{uuid.uuid4().hex}@{domain}>\r\n\r\n"
            "Bonjour,\r\nvoici le compte rendu.\r\n").encode()


@pytest.mark.parametrize(("domain", "selector"), [(RSA_DOMAIN, "mss2026"), (ED_DOMAIN, "ed1")])
def test_message_signed_with_the_pinned_key_is_delivered(rig: Rig, domain: str, selector: str) -> None:
    world, live = rig.world, rig.live
    private = rig.rsa_private if domain == RSA_DOMAIN else rig.ed_private
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    raw = message(domain, world.patient())
    signed = sign_message(raw, domain=domain, selector=selector, private_key_pem=private) + raw
    assert (b"a=rsa-sha256" if domain == RSA_DOMAIN else b"a=ed25519-sha256") in signed
    ctx = world.peer.client_context(live.ca_file)  # a verified client certificate, bound to another domain
    with mx_client(live, ctx) as client:
        unsigned = transaction(client, f"dr.b@{domain}", [world.patient()], raw)
        altered = transaction(client, f"dr.b@{domain}", [world.patient()], signed.replace(b"voici", b"voila"))
        good = transaction(client, f"dr.b@{domain}", [world.patient()], signed)
    assert unsigned.data == (550, "5.7.20 no passing DKIM signature found")
    assert altered.data == (550, "5.7.20 the DKIM signature of the From: domain does not verify")
    assert good.data is not None and good.data[0] == 250, good.data
    stored = mailbox_messages(live, ins=world.patients["open"])
    assert len(stored) == before + 1 and stored[-1].endswith(signed)


def test_trust_list_shows_the_pinned_selectors(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(rig.world.home), "domain", "trust", "list"]) == 0
    out = capsys.readouterr().out
    assert "pinned:mss2026" in out and "pinned:ed1" in out


def test_a_private_key_file_is_refused_with_a_clear_error(rig: Rig, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "mss2026.private"
    wrong.write_bytes(rig.rsa_private)
    code = main(["--home", str(rig.world.home), "domain", "trust", "add", "wrong.example", "--dkim",
                 f"pinned:s:{wrong}"])
    assert code == 1 and "this is a private key" in capsys.readouterr().err
