"""Commands valid before login: those of any state, CAPABILITY, NOOP, LOGOUT (RFC 3501 §6.1)
and ID (RFC 2971), and those of the not-authenticated state, STARTTLS, LOGIN, AUTHENTICATE
PLAIN (RFC 3501 §6.2, RFC 4616); AUTHENTICATE OAUTHBEARER / XOAUTH2 go on in
:mod:`imap.handlers.bearer`.

Every login goes through :meth:`imap.backend.Backend.authenticate` (which audits it and
throttles failures); the wire text of a failure never says which part was wrong.
"""

from __future__ import annotations

import base64
import binascii

from imap.backend import AuthenticationFailed, Credentials
from imap.handlers import bearer, external
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.session import Session
from imap.state import State, capability_line


# --- any state (RFC 3501 §6.1) --------------------------------------------------------
async def capability(s: Session, cmd: c.Capability) -> Reply:
    await s.send(capability_line(s.capabilities()))  # RFC 3501 §6.1.1
    return replies.CAPABILITY_COMPLETED


async def noop(s: Session, cmd: c.Noop) -> Reply:
    # RFC 3501 §6.1.2: the pending EXISTS / EXPUNGE / FETCH come from Session._updates.
    return replies.NOOP_COMPLETED


async def logout(s: Session, cmd: c.Logout) -> Reply:
    await s.send(replies.LOGGING_OUT.line())  # RFC 3501 §6.1.3: BYE before the tagged OK
    return replies.LOGOUT_COMPLETED


async def id_(s: Session, cmd: c.Id) -> Reply:
    # RFC 2971 §3.1: the client's fields are not logged (they may name a person's device).
    values: list[encoder.Value] = [item for pair in s.config.server_id for item in pair]
    await s.send(encoder.untagged(b"ID " + encoder.encode(values)))
    return replies.ID_COMPLETED


# --- not authenticated (RFC 3501 §6.2) -------------------------------------------------
async def starttls(s: Session, cmd: c.StartTls) -> Reply:
    if not s.config.starttls_available:
        raise CommandFailed(replies.STARTTLS_UNAVAILABLE)
    # RFC 3501 §6.2.1 and STARTTLS injection (RFC 7817 §... / CVE-2011-0411 class): anything
    # the client sent after the command is dropped, the receiver starts fresh after TLS.
    s.receiver = s._new_receiver()
    s.starttls_requested = True
    return replies.BEGIN_TLS


async def _login(s: Session, username: str, password: str) -> Reply:
    if not username or not password or len(username) > 320 or len(password) > 1024:
        raise AuthenticationFailed(detail="empty or oversized credentials")
    boxes = await s.backend.authenticate(Credentials(username, password, s.peer, s.tls))
    s.logged_in(boxes)
    caps = s.capabilities_after_login()
    return replies.LOGGED_IN.with_arg(" ".join(caps))


async def login(s: Session, cmd: c.Login) -> Reply:
    if not s.config.password_login:  # CAPABILITY says LOGINDISABLED (RFC 3501 §6.2.3)
        raise CommandFailed(replies.PASSWORDS_DISABLED)
    return await _login(s, cmd.userid, cmd.password)


def _plain(response: bytes) -> tuple[str, str]:
    """RFC 4616: [authzid] NUL authcid NUL passwd; an authzid other than authcid is refused."""
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise BadCommand(replies.INVALID_PLAIN)
    authzid, authcid, passwd = (p.decode("utf-8", "replace") for p in parts)
    if authzid and authzid.lower() != authcid.lower():
        raise AuthenticationFailed(detail="authorization identity differs")
    return authcid, passwd


async def authenticate(s: Session, cmd: c.Authenticate) -> Reply | None:
    mechanism = cmd.mechanism.upper()
    if mechanism in s.config.token_mechanisms and s.tls:  # RFC 7628 OAUTHBEARER, XOAUTH2 (§5: TLS)
        return await bearer.authenticate(s, cmd.tag, mechanism, cmd.initial_response)
    if mechanism == "EXTERNAL" and s.config.external and s.tls and s.peer_certificate is not None:
        return await external.authenticate(s, cmd.tag, cmd.initial_response)  # RFC 4422 appendix A
    if mechanism != "PLAIN" or not s.config.password_login:  # only what CAPABILITY lists
        raise CommandFailed(replies.UNSUPPORTED_MECHANISM, detail=cmd.mechanism[:20])
    if cmd.initial_response is not None:  # RFC 4959 SASL-IR
        return await _login(s, *_plain(cmd.initial_response))
    tag = cmd.tag

    async def on_line(session: Session, line: bytes) -> None:
        if line.strip() == b"*":  # RFC 3501 §6.2.2: the client cancels
            await session.fail_continued(tag, BadCommand(replies.AUTHENTICATION_CANCELLED))
            return
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
            ok = await _login(session, *_plain(decoded))
        except binascii.Error:
            await session.fail_continued(tag, BadCommand(replies.INVALID_BASE64))
            return
        except CommandFailed as exc:
            await session.fail_continued(tag, exc)
            return
        except BadCommand as exc:
            await session.fail_continued(tag, exc)
            return
        await session.finish_continued(tag, State.AUTHENTICATED, ok)

    s.expect_line(on_line)
    await s.send(encoder.continuation_data(b""))
    return None
