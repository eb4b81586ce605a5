"""AUTHENTICATE OAUTHBEARER (RFC 7628) and XOAUTH2, with or without the RFC 4959 initial response.

The response is parsed by :mod:`saslwire.bearer` (the one parser, shared with SMTP), the token checked by the backend
(:meth:`imap.backend.Backend.authenticate_token`). A refused token is answered as RFC 7628
§3.2.2 says: the JSON error as a ``+ <base64>`` continuation, the client's answer (``%x01``,
or anything), then ``NO [AUTHENTICATIONFAILED]``. A session opened so ends with ``* BYE`` the
configured grace time after the token's expiry (:meth:`imap.session.Session.logged_in`).
"""

from __future__ import annotations

import base64
import binascii

from imap.backend import TokenCredentials, TokenRefused
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.session import Session
from imap.state import State
from saslwire import bearer


async def _open(s: Session, tag: str, mechanism: str, response: bytes) -> Reply | None:
    """The tagged OK, or None when the error challenge was sent (the exchange goes on)."""
    try:
        parsed = bearer.parse(mechanism, response)
    except bearer.MalformedResponse as exc:
        raise BadCommand(replies.INVALID_BEARER, detail=f"{mechanism}: {exc}") from None
    credentials = TokenCredentials(mechanism, parsed.authzid, parsed.token, s.peer, s.tls)
    try:
        login = await s.backend.authenticate_token(credentials)
    except TokenRefused as refused:
        await _challenge(s, tag, refused)
        return None
    s.logged_in(login.mailboxes, expires_at=login.expires_at)
    return replies.LOGGED_IN.with_arg(" ".join(s.capabilities_after_login()))


async def _challenge(s: Session, tag: str, refused: TokenRefused) -> None:
    async def on_answer(session: Session, line: bytes) -> None:
        # RFC 7628 §3.2.2: the client answers %x01 (a "*" cancel ends the same way)
        await session.fail_continued(tag, refused)

    s.expect_line(on_answer)
    await s.send(encoder.continuation_data(base64.b64encode(refused.challenge)))


async def authenticate(s: Session, tag: str, mechanism: str, initial: bytes | None) -> Reply | None:
    if initial is not None:  # RFC 4959 SASL-IR
        return await _open(s, tag, mechanism, initial)

    async def on_line(session: Session, line: bytes) -> None:
        if line.strip() == b"*":  # RFC 3501 §6.2.2: the client cancels
            await session.fail_continued(tag, BadCommand(replies.AUTHENTICATION_CANCELLED))
            return
        try:
            ok = await _open(session, tag, mechanism, base64.b64decode(line.strip(), validate=True))
        except binascii.Error:
            await session.fail_continued(tag, BadCommand(replies.INVALID_BASE64))
            return
        except (CommandFailed, BadCommand) as exc:
            await session.fail_continued(tag, exc)
            return
        if ok is not None:
            await session.finish_continued(tag, State.AUTHENTICATED, ok)

    s.expect_line(on_line)
    await s.send(encoder.continuation_data(b""))
    return None

