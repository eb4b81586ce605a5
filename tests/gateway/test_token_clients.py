"""Real mail clients sign in with access tokens from the test identity provider (issue 19):
mutt (Debian's package) with ``imap_authenticators="oauthbearer"`` (and ``xoauth2``) and an
``imap_oauth_refresh_command`` that asks the running npm ``oidc-provider`` for a fresh token,
copying mail over IMAPS or STARTTLS and submitting (465 or 587) with ``smtp_oauth_refresh_command``;
aioimaplib's ``xoauth2``; imaplib's XOAUTH2 and smtplib's after ``STARTTLS`` on the plain ports,
where the token mechanisms are neither offered nor accepted before TLS (RFC 7628 §5: bearer
tokens only over a protected channel). Thunderbird's autoconfig document
names the provider's endpoints (its ``oAuth2`` element) from the provider's own discovery
document; a client that follows it gets a token that opens the mailbox.

The refresh command is ``python -m tests.oidc.provider ISSUER CLIENT``: the client_credentials
grant the other live tests use (tests/oidc/provider.py), run by the client itself. In CI a
missing program or provider fails the test (tests/conftest.py ``require``).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import os
import secrets
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import defusedxml.ElementTree as DET
import httpx
import pytest
from aioimaplib import aioimaplib
from sqlalchemy import select

from gateway.accounts.identities import ORGANISATIONAL
from gateway.accounts.pros import add_pro, hosted_domain
from gateway.operations import identities
from gateway.operations.common import Actor
from gateway.store.models import AuditEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import HOSTED, PASSWORD, populate
from tests.conftest import require
from tests.gateway.test_token_login import xoauth2
from tests.imap_server.kit import MESSAGES, MUTT_UNATTENDED, ImapEnv, program
from tests.oidc.provider import AUDIENCE, CLIENTS, PrivateProvider, missing, private_provider

ACTOR = Actor("tester", "cli", None)
ALPHA = "899700000001"  # lps-dr-alpha's SubjectNameID (tests/oidc/provider.py)
ORG = f"accueil@{HOSTED}"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # a refused mutt waits for a person: bounded here


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateProvider]:
    require(missing(), "the test identity provider")
    with private_provider(tmp_path_factory.mktemp("oidc-clients")) as running:
        yield running


@pytest.fixture(scope="module")
def site(provider: PrivateProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapEnv]:
    oidc = (f'\n[auth.oidc]\nissuer = "{provider.issuer}"\naudience = "{AUDIENCE}"\n'
            'identity_claim = "SubjectNameID"\nrequired_scope = "mail"\n')
    world = populate(make_home(tmp_path_factory.mktemp("token-clients") / "home", extra_config=oidc))
    with live_gateway(world.home) as live:
        svc = live.services
        now = datetime.now(UTC)
        with svc.db.write() as session:
            domain = hosted_domain(session, HOSTED)
            assert domain is not None
            add_pro(session, svc.keys, ORG, domain, mailbox_type=ORGANISATIONAL)
            identities.add_identity(session, ACTOR, world.pro, ALPHA, now=now)
            identities.grant(session, ACTOR, ORG, world.pro, now=now)
        yield ImapEnv(world, live)


def _context(live: LiveGateway) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=live.ca_file)


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HOME": str(cwd), "TERM": "xterm", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, timeout=TIMEOUT, env=env, check=False)
    assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stdout!r}\n{result.stderr!r}"
    return result


def _logins(live: LiveGateway, action: str, address: str) -> list[str]:
    with live.services.db.read() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action == action,
                                                  AuditEntry.actor == f"pro:{address}")).scalars().all()
    return [r.details or "" for r in rows]


def _refresh_command(provider: PrivateProvider) -> str:
    """What mutt runs for a token: this interpreter, the provider's client_credentials grant."""
    return f"{sys.executable} -m tests.oidc.provider {provider.issuer} lps-dr-alpha"


def _muttrc(env: ImapEnv, provider: PrivateProvider, tmp_path: Path, mechanism: str, tls: str) -> Path:
    """``tls``: ``implicit`` (imaps://, smtps://) or ``starttls`` (imap://, smtp:// upgraded by
    ``ssl_starttls``; ``ssl_force_tls`` refuses to go on in clear)."""
    if tls == "implicit":
        imap, smtp = f"imaps://localhost:{env.imaps_port}/", f"smtps://{env.world.pro}@localhost:{env.live.port('submissions')}/"
    else:
        imap, smtp = f"imap://localhost:{env.imap_port}/", f"smtp://{env.world.pro}@localhost:{env.live.port('submission')}/"
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f"""set imap_user = "{env.world.pro}"
set imap_authenticators = "{mechanism}"
set imap_oauth_refresh_command = "{_refresh_command(provider)}"
set smtp_url = "{smtp}"
set smtp_authenticators = "{mechanism}"
set smtp_oauth_refresh_command = "{_refresh_command(provider)}"
set from = "{env.world.pro}"
set use_from = yes
set record = ""
set folder = "{imap}"
set spoolfile = "+INBOX"
set ssl_ca_certificates_file = "{env.live.ca_file}"
set ssl_force_tls = yes
set ssl_starttls = yes
{MUTT_UNATTENDED}""")
    return muttrc


def _empty_inbox(env: ImapEnv, address: str) -> None:
    box = imaplib.IMAP4_SSL("127.0.0.1", env.imaps_port, ssl_context=_context(env.live), timeout=30)
    box.login(address, PASSWORD)
    box.select("INBOX")
    typ, data = box.search(None, "ALL")
    if typ == "OK" and data[0]:
        box.store("1:*", "+FLAGS", "\\Deleted")
        box.expunge()
    box.logout()


def _stored(folder: Path) -> list[bytes]:
    files = sorted((folder / "cur").iterdir()) + sorted((folder / "new").iterdir())
    return [f.read_bytes() for f in files]


def test_mutt_supports_oauth() -> None:
    """Debian's mutt has the OAUTHBEARER / XOAUTH2 refresh commands (mutt ≥ 1.11 / 2.0)."""
    mutt = program("mutt")
    variables = subprocess.run([mutt, "-n", "-F", "/dev/null", "-D"], capture_output=True, text=True,
                               timeout=30, check=False, env={**os.environ, "HOME": "/nonexistent"}).stdout
    assert "imap_oauth_refresh_command=" in variables and "smtp_oauth_refresh_command=" in variables


MUTT_CASES = [("oauthbearer", "implicit"), ("xoauth2", "implicit"), ("oauthbearer", "starttls")]


@pytest.mark.parametrize(("mechanism", "tls"), MUTT_CASES)
def test_mutt_copies_mail_after_a_token_sign_in(site: ImapEnv, provider: PrivateProvider, tmp_path: Path,
                                                mechanism: str, tls: str) -> None:
    """mutt, scripted under ``script`` with ``push``, signs in with the token its refresh command
    printed, tags every message, copies them to a Maildir and quits."""
    mutt, script = program("mutt"), program("script")
    env, pro = site, site.world.pro
    _empty_inbox(env, pro)  # each run starts from an INBOX holding the sample messages only
    before = len(_logins(site.live, "imap.login", pro))
    for raw in MESSAGES:
        env.deliver(pro, raw)
    target = tmp_path / "saved"
    muttrc = _muttrc(env, provider, tmp_path, mechanism, tls)
    with muttrc.open("a") as rc:
        rc.write(f'push "<tag-pattern>~A<enter><tag-prefix><copy-message>{target}<enter><exit>"\n')
    _run([script, "-q", "-e", "-c", f"{mutt} -n -F {muttrc}", "/dev/null"], tmp_path)
    stored = _stored(target)
    assert len(stored) == len(MESSAGES)
    # mutt writes LF line endings and adds Content-Length / Lines / Status headers of its own
    bodies = sorted(m.split(b"\n\n", 1)[1] for m in stored)
    assert bodies == sorted(m.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] for m in MESSAGES)
    details = _logins(site.live, "imap.login", pro)[before:]
    assert any(f'"{mechanism}"' in d and '"auth.ok"' in d for d in details), details


@pytest.mark.parametrize(("mechanism", "tls"), MUTT_CASES)
def test_mutt_submits_with_a_token(site: ImapEnv, provider: PrivateProvider, tmp_path: Path, mechanism: str,
                                   tls: str) -> None:
    """mutt in batch mode (``-s``, the body on stdin) submits over implicit TLS (465) or STARTTLS (587)
    with the token of its ``smtp_oauth_refresh_command``; the colleague's INBOX receives it."""
    mutt = program("mutt")
    env, colleague = site, site.world.colleague
    before = len(_logins(site.live, "smtp.login", env.world.pro))
    marker = f"token-submission-{secrets.token_hex(6)}"
    muttrc = _muttrc(env, provider, tmp_path, mechanism, tls)
    _run([mutt, "-n", "-F", str(muttrc), "-s", f"Compte rendu {marker}", "--", colleague], tmp_path,
         stdin=f"Bonjour,\n{marker}\n".encode())
    deadline = time.monotonic() + 20
    found: list[bytes] = []
    while time.monotonic() < deadline and not found:
        box = imaplib.IMAP4_SSL("127.0.0.1", env.imaps_port, ssl_context=_context(env.live), timeout=30)
        box.login(colleague, PASSWORD)
        box.select("INBOX", readonly=True)
        typ, data = box.search(None, "BODY", marker)
        found = data[0].split() if typ == "OK" and data and data[0] else []
        box.logout()
        if not found:
            time.sleep(0.5)
    assert len(found) == 1, "the message submitted by mutt did not arrive"
    details = _logins(site.live, "smtp.login", env.world.pro)[before:]
    assert any(f'"{mechanism}"' in d and '"auth.ok"' in d for d in details), details


def test_aioimaplib_xoauth2_opens_the_granted_mailbox(site: ImapEnv, provider: PrivateProvider) -> None:
    """aioimaplib's ``xoauth2`` (AUTHENTICATE XOAUTH2 with the initial response) opens the
    organisational mailbox granted to the token's professional; SELECT and FETCH follow."""
    uid = site.deliver(ORG, MESSAGES[0])

    async def session() -> tuple[str, list[bytes]]:
        client = aioimaplib.IMAP4_SSL(site.host, site.imaps_port, ssl_context=site.client_context(), timeout=15)
        await client.wait_hello_from_server()
        signed_in = await client.xoauth2(ORG, provider.token())
        assert (await client.select("INBOX")).result == "OK"
        fetched = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
        await client.logout()
        return signed_in.result, [bytes(line) for line in fetched.lines if isinstance(line, bytearray)]

    result, bodies = asyncio.run(asyncio.wait_for(session(), 60))
    assert result == "OK"
    assert bodies == [MESSAGES[0]]
    assert any('"xoauth2"' in d and '"auth.ok"' in d for d in _logins(site.live, "imap.login", ORG))


def test_token_sign_in_after_starttls_only(site: ImapEnv, provider: PrivateProvider) -> None:
    """On the plain IMAP port the token mechanisms appear only after STARTTLS; before it an
    AUTHENTICATE XOAUTH2 is refused without the token being checked (nothing audited)."""
    pro = site.world.pro
    token = provider.token()
    before = _logins(site.live, "imap.login", pro)
    client = imaplib.IMAP4("127.0.0.1", site.imap_port, timeout=30)
    assert "STARTTLS" in client.capabilities
    assert not {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} & set(client.capabilities)
    response = base64.b64encode(xoauth2(pro, token)).decode()
    typ, data = client._simple_command("AUTHENTICATE", "XOAUTH2", response)
    assert typ == "NO", data
    assert client.state == "NONAUTH"
    assert _logins(site.live, "imap.login", pro) == before  # the token was not looked at
    client.starttls(ssl_context=_context(site.live))
    assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} <= set(client.capabilities)
    typ, _ = client.authenticate("XOAUTH2", lambda _: xoauth2(pro, token))
    assert typ == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    after = _logins(site.live, "imap.login", pro)[len(before):]
    assert any('"xoauth2"' in d and '"auth.ok"' in d for d in after)


def _thunderbird(live: LiveGateway, path: str, address: str) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port('http')}", timeout=30) as http:
        return http.get(path, params={"emailaddress": address})


@pytest.mark.parametrize("path", ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"])
def test_thunderbird_autoconfig_names_the_provider(site: ImapEnv, provider: PrivateProvider, path: str) -> None:
    """The ``oAuth2`` element, field by field against the provider's discovery document; its
    ``tokenURL`` gives a client a token that opens the mailbox."""
    response = _thunderbird(site.live, path, site.world.pro)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=300"
    root = DET.fromstring(response.content)
    assert [child.tag for child in root] == ["emailProvider", "oAuth2"]
    with httpx.Client(timeout=30) as http:
        discovery = http.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    element = root.find("oAuth2")
    assert element is not None
    oauth = {child.tag: child.text or "" for child in element}
    assert oauth == {"issuer": "127.0.0.1", "scope": "openid mail",
                     "authURL": discovery["authorization_endpoint"], "tokenURL": discovery["token_endpoint"]}
    assert oauth["tokenURL"] == f"{provider.issuer}/token" and oauth["authURL"] == f"{provider.issuer}/auth"
    for server in root.iter("incomingServer"):
        assert [a.text for a in server.findall("authentication")] == ["OAuth2", "password-cleartext"]
    # a client following the document: the token endpoint, the advertised scope, then IMAP
    form = {"grant_type": "client_credentials", "scope": oauth["scope"]}
    with httpx.Client(timeout=30) as http:
        answer = http.post(oauth["tokenURL"], data=form, auth=("lps-dr-alpha", CLIENTS["lps-dr-alpha"][0]))
    assert answer.status_code == 200, answer.text
    box = imaplib.IMAP4_SSL("127.0.0.1", site.imaps_port, ssl_context=_context(site.live), timeout=30)
    typ, _ = box.authenticate("XOAUTH2", lambda _: xoauth2(site.world.pro, answer.json()["access_token"]))
    assert typ == "OK"
    box.logout()


def test_thunderbird_autoconfig_without_discovery(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An issuer that cannot be reached: OAuth2 still named as a method (the servers take tokens),
    the ``oAuth2`` element left out rather than guessed, and the answer not cached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    oidc = (f'\n[auth.oidc]\nissuer = "http://127.0.0.1:{port}"\naudience = "{AUDIENCE}"\n'
            'required_scope = "mail"\n')
    world = populate(make_home(tmp_path_factory.mktemp("token-autoconfig") / "home", extra_config=oidc))
    with live_gateway(world.home) as live:
        for _ in range(2):  # the second within jwks_refresh_seconds: not asked again, same answer
            response = _thunderbird(live, "/mail/config-v1.1.xml", world.pro)
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"
            root = DET.fromstring(response.content)
            assert root.find("oAuth2") is None
            assert [a.text for a in root.iter("authentication")][:2] == ["OAuth2", "password-cleartext"]


def test_submission_token_after_starttls_only(site: ImapEnv, provider: PrivateProvider) -> None:
    """The same on submission (587): no token mechanism on the EHLO before STARTTLS, an AUTH
    XOAUTH2 sent anyway is refused unread; after STARTTLS it is offered and accepted."""
    pro = site.world.pro
    token = provider.token()
    before = _logins(site.live, "smtp.login", pro)
    with smtplib.SMTP("127.0.0.1", site.live.port("submission"), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        assert smtp.has_extn("starttls")
        assert not {"OAUTHBEARER", "XOAUTH2"} & set(smtp.esmtp_features.get("auth", "").upper().split())
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(pro, token)).decode())
        assert code == 538, code  # RFC 4954 §6: encryption required for the mechanism
        assert _logins(site.live, "smtp.login", pro) == before  # the token was not looked at
        smtp.starttls(context=_context(site.live))
        smtp.ehlo("lps.test")
        assert {"OAUTHBEARER", "XOAUTH2"} <= set(smtp.esmtp_features["auth"].split())
        code, _ = smtp.auth("XOAUTH2", lambda _=None: xoauth2(pro, token).decode(), initial_response_ok=True)
        assert code == 235
    after = _logins(site.live, "smtp.login", pro)[len(before):]
    assert any('"xoauth2"' in d and '"auth.ok"' in d for d in after)
