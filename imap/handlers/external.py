"""AUTHENTICATE EXTERNAL (RFC 4422 appendix A) for application mailboxes (issue 19).

Offered only inside TLS when the handshake verified a client certificate
(:attr:`imap.session.Session.peer_certificate`). The one message is the authorisation identity,
UTF-8, possibly empty (``=`` as the RFC 4959 initial response): empty asks for the mailbox the
certificate is bound to. The backend decides (:meth:`imap.backend.Backend.authenticate_certificate`);
a refusal is ``NO [AUTHENTICATIONFAILED]``.
"""

from __future__ import annotations

import base64
import binascii

from imap.backend import CertificateCredentials
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.session import Session
from imap.state import State


async def _open(s: Session, message: bytes) -> Reply:
    try:
        authzid = message.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCommand(replies.INVALID_EXTERNAL, detail="authzid not UTF-8") from None
    if "\x00" in authzid:
        raise BadCommand(replies.INVALID_EXTERNAL, detail="NUL in the authzid")
    if s.peer_certificate is None:  # not offered then; the handler is not reached
        raise CommandFailed(replies.UNSUPPORTED_MECHANISM, detail="EXTERNAL")
    credentials = CertificateCredentials(s.peer_certificate, authzid.strip() or None, s.peer)
    s.logged_in(await s.backend.authenticate_certificate(credentials))
    return replies.LOGGED_IN.with_arg(" ".join(s.capabilities_after_login()))


async def authenticate(s: Session, tag: str, initial: bytes | None) -> Reply | None:
    if initial is not None:  # RFC 4959 SASL-IR ("=" is the empty message)
        return await _open(s, initial)

    async def on_line(session: Session, line: bytes) -> None:
        if line.strip() == b"*":  # RFC 3501 §6.2.2: the client cancels
            await session.fail_continued(tag, BadCommand(replies.AUTHENTICATION_CANCELLED))
            return
        try:
            ok = await _open(session, base64.b64decode(line.strip(), validate=True))
        except binascii.Error:
            await session.fail_continued(tag, BadCommand(replies.INVALID_BASE64))
            return
        except (CommandFailed, BadCommand) as exc:
            await session.fail_continued(tag, exc)
            return
        await session.finish_continued(tag, State.AUTHENTICATED, ok)

    s.expect_line(on_line)
    await s.send(encoder.continuation_data(b""))
    return None
