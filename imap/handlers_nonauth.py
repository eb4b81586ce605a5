"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE PLAIN (RFC 3501 §6.2, RFC 4616).

Every login goes through :meth:`imap.backend.Backend.authenticate` (which audits it and
throttles failures); the wire text of a failure never says which part was wrong.
"""

from __future__ import annotations

import base64
import binascii

from imap import command as c
from imap import encoder
from imap.backend import AuthenticationFailed, Credentials
from imap.errors import BadCommand, CommandFailed
from imap.outcome import Ok
from imap.session import Session
from imap.state import State


async def starttls(s: Session, cmd: c.StartTls) -> Ok:
    if not s.config.starttls_available:
        raise CommandFailed("STARTTLS not available here")
    # RFC 3501 §6.2.1 and STARTTLS injection (RFC 7817 §... / CVE-2011-0411 class): anything
    # the client sent after the command is dropped, the receiver starts fresh after TLS.
    s.receiver = s._new_receiver()
    s.starttls_requested = True
    return Ok("Begin TLS negotiation now")


async def _login(s: Session, username: str, password: str) -> Ok:
    if not username or not password or len(username) > 320 or len(password) > 1024:
        raise AuthenticationFailed(detail="empty or oversized credentials")
    boxes = await s.backend.authenticate(Credentials(username, password, s.peer, s.tls))
    s.logged_in(boxes)
    caps = s.capabilities_after_login()
    return Ok("Logged in", "CAPABILITY " + " ".join(caps))


async def login(s: Session, cmd: c.Login) -> Ok:
    return await _login(s, cmd.userid, cmd.password)


def _plain(response: bytes) -> tuple[str, str]:
    """RFC 4616: [authzid] NUL authcid NUL passwd; an authzid other than authcid is refused."""
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise BadCommand("Invalid PLAIN response")
    authzid, authcid, passwd = (p.decode("utf-8", "replace") for p in parts)
    if authzid and authzid.lower() != authcid.lower():
        raise AuthenticationFailed(detail="authorization identity differs")
    return authcid, passwd


async def authenticate(s: Session, cmd: c.Authenticate) -> Ok:
    if cmd.mechanism.upper() != "PLAIN":
        raise CommandFailed("Unsupported authentication mechanism", detail=cmd.mechanism[:20])
    if cmd.initial_response is not None:  # RFC 4959 SASL-IR
        return await _login(s, *_plain(cmd.initial_response))
    tag = cmd.tag

    async def on_line(session: Session, line: bytes) -> None:
        if line.strip() == b"*":  # RFC 3501 §6.2.2: the client cancels
            await session.fail_continued(tag, BadCommand("Authentication cancelled"))
            return
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
            ok = await _login(session, *_plain(decoded))
        except binascii.Error:
            await session.fail_continued(tag, BadCommand("Invalid base64"))
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
    return Ok("")
