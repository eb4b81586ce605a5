"""Sign-in with Pro Santé Connect–style access tokens on a live gateway (issue 19): SASL XOAUTH2
and OAUTHBEARER (RFC 7628) over Python's imaplib (implicit TLS) and smtplib (submissions),
tokens minted by the real OpenID Connect provider (npm ``oidc-provider``, tests/oidc).

A token for a bound identity opens its personal mailbox and a granted organisational one; a
token of another identity, an expired one, one for another audience and one without the scope
are refused with the RFC 7628 §3.2.2 challenge, then ``NO [AUTHENTICATIONFAILED]`` / ``535``;
each attempt audited without the token, failures counted by the login throttle; an IMAP session
ends with ``* BYE`` the grace time (1 s here) after its token's expiry.
"""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from gateway.accounts.identities import ORGANISATIONAL
from gateway.accounts.pros import add_pro, hosted_domain
from gateway.accounts.throttle import pair_prefix
from gateway.operations import identities
from gateway.operations.common import Actor
from gateway.store.models import AuditEntry, LoginCounter
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import HOSTED, World, populate
from tests.conftest import IN_CI
from tests.oidc.provider import AUDIENCE, PrivateProvider, missing, private_provider

ACTOR = Actor("tester", "cli", None)
ALPHA, BETA = "899700000001", "899700000002"  # the provider's clients' SubjectNameID
ORG = f"secretariat@{HOSTED}"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateProvider]:
    why = missing()
    if why is not None:
        if IN_CI:
            pytest.fail(f"the test identity provider is required in CI: {why}")
        pytest.skip(why)
    with private_provider(tmp_path_factory.mktemp("oidc-live")) as running:
        yield running


@pytest.fixture(scope="module")
def site(provider: PrivateProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    oidc = (f'\n[auth.oidc]\nissuer = "{provider.issuer}"\naudience = "{AUDIENCE}"\n'
            'identity_claim = "SubjectNameID"\nrequired_scope = "mail"\nsession_grace_seconds = 1\n')
    world = populate(make_home(tmp_path_factory.mktemp("token-login") / "home", extra_config=oidc))
    with live_gateway(world.home) as live:
        svc = live.services
        now = datetime.now(UTC)
        with svc.db.write() as session:
            domain = hosted_domain(session, HOSTED)
            assert domain is not None
            add_pro(session, svc.keys, ORG, domain, mailbox_type=ORGANISATIONAL)
            identities.add_identity(session, ACTOR, world.pro, ALPHA, now=now)
            identities.add_identity(session, ACTOR, f"dr.durand@{HOSTED}", BETA, now=now)
            identities.grant(session, ACTOR, ORG, world.pro, now=now)
        yield world, live


def _context(live: LiveGateway) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=live.ca_file)


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str) -> bytes:
    return f"n,a={user},\x01host=127.0.0.1\x01port=993\x01auth=Bearer {token}\x01\x01".encode()


class Sasl:
    """imaplib's authobject: the response first, then ``%x01`` to an error challenge (kept)."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.challenges: list[bytes] = []

    def __call__(self, challenge: bytes) -> bytes:
        if not self.challenges and challenge == b"" and self.response:
            response, self.response = self.response, b""
            return response
        self.challenges.append(challenge)
        return b"\x01"


def imap_sign_in(live: LiveGateway, mechanism: str, response: bytes) -> tuple[str, list[bytes], imaplib.IMAP4_SSL]:
    client = imaplib.IMAP4_SSL("127.0.0.1", live.port("imaps"), ssl_context=_context(live), timeout=30)
    sasl = Sasl(response)
    try:
        typ, _ = client.authenticate(mechanism, sasl)
    except imaplib.IMAP4.error as exc:
        assert "[AUTHENTICATIONFAILED]" in str(exc)
        typ = "NO"
    return typ, sasl.challenges, client


def forged(provider: PrivateProvider, **changes: Any) -> str:
    """A token signed with the provider's own current key, its claims changed."""
    claims = jwt.decode(provider.token(), options={"verify_signature": False})
    claims.update(changes)
    key = jwt.PyJWK(provider.keys[0])
    return jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": provider.keys[0]["kid"], "typ": "at+jwt"})


def test_capabilities_name_the_token_mechanisms(site: tuple[World, LiveGateway]) -> None:
    _, live = site
    client = imaplib.IMAP4_SSL("127.0.0.1", live.port("imaps"), ssl_context=_context(live), timeout=30)
    assert {"AUTH=OAUTHBEARER", "AUTH=XOAUTH2", "SASL-IR"} <= set(client.capabilities)
    client.shutdown()
    plain = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)  # before STARTTLS: none
    assert not [c for c in plain.capabilities if c.startswith("AUTH=")]
    plain.shutdown()
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        assert {"OAUTHBEARER", "XOAUTH2"} <= set(smtp.esmtp_features["auth"].split())


def test_imap_personal_and_granted_mailboxes(site: tuple[World, LiveGateway], provider: PrivateProvider) -> None:
    world, live = site
    token = provider.token("lps-dr-alpha")
    typ, challenges, client = imap_sign_in(live, "XOAUTH2", xoauth2(world.pro, token))
    assert (typ, challenges) == ("OK", [])
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    # OAUTHBEARER with the initial response (SASL-IR), the organisational mailbox granted
    client = imaplib.IMAP4_SSL("127.0.0.1", live.port("imaps"), ssl_context=_context(live), timeout=30)
    typ, data = client._simple_command("AUTHENTICATE", "OAUTHBEARER",
                                       base64.b64encode(oauthbearer(ORG, token)).decode())
    assert typ == "OK", data
    client.state = "AUTH"
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    with live.services.db.read() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action == "imap.login")).scalars().all()
    assert any(r.actor == f"pro:{ORG}" and '"auth.ok"' in (r.details or "") for r in rows)
    assert not any(token in (r.details or "") for r in rows)


def unsigned(provider: PrivateProvider) -> str:
    claims = jwt.decode(provider.token(), options={"verify_signature": False})
    return jwt.encode(claims, "", algorithm="none")


def unknown_key(provider: PrivateProvider) -> str:
    claims = jwt.decode(provider.token(), options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "made-up", "typ": "at+jwt"})


@pytest.mark.parametrize("case", ["other identity", "expired", "other audience", "no scope", "unknown key", "none"])
def test_imap_refusals_get_the_challenge(site: tuple[World, LiveGateway], provider: PrivateProvider,
                                         case: str) -> None:
    world, live = site
    token = {
        "other identity": lambda: provider.token("lps-dr-beta"),
        "expired": lambda: forged(provider, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000),
        "other audience": lambda: forged(provider, aud="https://other.gateway.test/"),
        "no scope": lambda: provider.token("lps-dr-alpha", scope="openid"),
        "unknown key": lambda: unknown_key(provider),
        "none": lambda: unsigned(provider),
    }[case]()
    typ, challenges, client = imap_sign_in(live, "OAUTHBEARER", oauthbearer(world.pro, token))
    client.shutdown()
    assert typ == "NO" and len(challenges) == 1
    error = json.loads(challenges[0])
    assert error["status"] == ("insufficient_scope" if case == "no scope" else "invalid_token")
    assert error["scope"] == "mail" and error["openid-configuration"].startswith(provider.issuer)
    with live.services.db.read() as s:  # counted by the login throttle, like a wrong password
        prefix = pair_prefix(*live.services.keys.index_version(s), "pro", world.pro)  # keyed, never the text
        pair = s.execute(select(LoginCounter).where(LoginCounter.key.like(prefix + "%"))).scalar_one()
    assert pair.failures >= 1
    with live.services.db.read() as s:  # audited with the reason, never the token
        details = [r.details or "" for r in s.execute(select(AuditEntry).where(AuditEntry.action == "imap.login"))
                   .scalars()]
    assert any('"oauthbearer"' in d and ('"token.' in d or '"identity.' in d) for d in details)
    assert not any(token in d for d in details)


def _smtp(live: LiveGateway, mechanism: str, response: Callable[..., str]) -> int:
    with smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live), timeout=30) as smtp:
        smtp.ehlo("lps.test")
        try:
            code, _ = smtp.auth(mechanism, response, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code
        return code


def test_submission_xoauth2_and_oauthbearer(site: tuple[World, LiveGateway], provider: PrivateProvider) -> None:
    world, live = site
    token = provider.token("lps-dr-alpha")
    assert _smtp(live, "XOAUTH2", lambda _=None: xoauth2(world.pro, token).decode()) == 235
    assert _smtp(live, "OAUTHBEARER", lambda _=None: oauthbearer(ORG, token).decode()) == 235
    seen: list[bytes] = []

    def refused(challenge: bytes | None = None) -> str:
        if challenge is None:
            return xoauth2(world.pro, provider.token("lps-dr-beta")).decode()
        seen.append(challenge)
        return "\x01"

    assert _smtp(live, "XOAUTH2", refused) == 535
    assert json.loads(seen[0]) == {"status": "401", "schemes": "bearer", "scope": "mail"}


def test_imap_session_ends_after_the_grace_time(site: tuple[World, LiveGateway], provider: PrivateProvider) -> None:
    world, live = site
    token = forged(provider, exp=int(time.time()) + 2)  # expires in 2 s; grace 1 s
    typ, _, client = imap_sign_in(live, "XOAUTH2", xoauth2(world.pro, token))
    assert typ == "OK"
    started = time.monotonic()
    assert client.select("INBOX")[0] == "OK"
    line = client.readline()  # nothing else is pending: the next line is the server's own
    assert line == b"* BYE Access token expired; sign in again\r\n"
    assert 0.5 < time.monotonic() - started < 10
    assert client.readline() == b""  # and the connection is closed
    client.shutdown()
    # a session with a fresh token (5 min) is still open meanwhile
    typ, _, other = imap_sign_in(live, "XOAUTH2", xoauth2(world.pro, provider.token()))
    assert typ == "OK" and other.noop()[0] == "OK"
    other.logout()


def test_sessions_opened_by_token_end_when_the_mailbox_account_is_suspended(
        site: tuple[World, LiveGateway], provider: PrivateProvider) -> None:
    """The account's status is what matters, not how the session signed in: a token session of
    the granted organisational mailbox ends once an administrator suspends that mailbox's
    account, at the next IMAP command (``* BYE``) and the next MAIL FROM (``421 4.7.0``), within
    the bound of the check (5 s; at once on PostgreSQL); the identity's personal mailbox goes on."""
    from gateway.operations import pros as ops_pros

    world, live = site
    token = provider.token("lps-dr-alpha")
    imap = imaplib.IMAP4_SSL("127.0.0.1", live.port("imaps"), ssl_context=_context(live), timeout=30)
    typ, _ = imap._simple_command("AUTHENTICATE", "OAUTHBEARER", base64.b64encode(oauthbearer(ORG, token)).decode())
    assert typ == "OK"
    imap.state = "AUTH"
    assert imap.select("INBOX")[0] == "OK"
    _, _, personal = imap_sign_in(live, "XOAUTH2", xoauth2(world.pro, token))
    smtp = smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=_context(live), timeout=30)
    try:
        smtp.ehlo("client.clinic.test")
        assert smtp.auth("OAUTHBEARER", lambda _=None: oauthbearer(ORG, token).decode(),
                         initial_response_ok=True)[0] == 235
        with live.services.db.write() as session:
            ops_pros.set_status(session, ACTOR, ORG, "disabled", now=datetime.now(UTC))
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.abort, match="Account disabled by the administrator"):
            while time.monotonic() - started < 7:
                imap.noop()
                time.sleep(0.2)
        assert time.monotonic() - started < (6.5 if live.services.db.is_sqlite else 1.5)
        assert smtp.mail(ORG) == (421, b"4.7.0 account disabled by the administrator, closing connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
        assert personal.noop()[0] == "OK"
    finally:
        with live.services.db.write() as session:
            ops_pros.set_status(session, ACTOR, ORG, "active", now=datetime.now(UTC))
        smtp.close()
        imap.shutdown()
        personal.logout()
