"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 3501 §6.1), ID (RFC 2971)."""

from __future__ import annotations

from imap import command as c
from imap import encoder
from imap.capabilities import capability_line
from imap.errors import Bye
from imap.outcome import Ok
from imap.session import Session


async def capability(s: Session, cmd: c.Capability) -> Ok:
    await s.send(capability_line(s.capabilities()))  # RFC 3501 §6.1.1
    return Ok("CAPABILITY completed")


async def noop(s: Session, cmd: c.Noop) -> Ok:
    # RFC 3501 §6.1.2: the pending EXISTS / EXPUNGE / FETCH come from Session._updates.
    return Ok("NOOP completed")


async def logout(s: Session, cmd: c.Logout) -> Ok:
    await s.send(Bye("Logging out").response())  # RFC 3501 §6.1.3: BYE before the tagged OK
    return Ok("LOGOUT completed")


async def id_(s: Session, cmd: c.Id) -> Ok:
    # RFC 2971 §3.1: the client's fields are not logged (they may name a person's device).
    values: list[encoder.Value] = [item for pair in s.config.server_id for item in pair]
    await s.send(encoder.untagged(b"ID " + encoder.encode(values)))
    return Ok("ID completed")
