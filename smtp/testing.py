"""A test kit for SMTP without sockets: an in-memory backend and a transcript runner.

:class:`Memory` implements every :mod:`smtp.backend` Protocol the way the gateway does in
outline (users with passwords, addresses refused with a verdict, deliveries kept in a
list, a memory budget of a fixed size) and can be told to fail or throttle. :class:`Client`
drives one :class:`~smtp.session.Session` the way a client would, bytes in, reply lines
out; :func:`transcript` runs a script (pymap ``mocktransport``, maddy ``tests/conn.go``)::

    S: 220 mx.test ESMTP service ready
    C: EHLO client.test
    S: 250-mx.test hello
    ...
    C: QUIT
    S: 221 2.0.0 closing connection
    S: [close]

``C:`` lines are sent in UTF-8 with CRLF (``C:`` alone is an empty line); consecutive ``C:``
lines go in one chunk (pipelining).
``S:`` lines are the expected reply lines, in order and exactly (trailing spaces aside,
as in ``334 ``); ``S: [starttls]`` and
``S: [close]`` are the session's events (after ``[starttls]`` the handshake is taken as
done). Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from smtp import replies
from smtp.backend import (
    AuthResult,
    Backend,
    Credentials,
    DeliveryRefused,
    Envelope,
    ExternalCredentials,
    Recipient,
    SessionFacts,
    TlsFacts,
    TokenCredentials,
)
from smtp.output import Output
from smtp.replies import ReplyLike
from smtp.session import Session, SessionConfig

HOST = "mx.test"
TLS = TlsFacts(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384")


class Failure(RuntimeError):
    """What a :class:`Memory` told to fail raises (stands for a store that went away)."""


@dataclass(frozen=True)
class Delivered:
    facts: SessionFacts
    envelope: Envelope
    message: bytes


@dataclass
class Memory:
    users: dict[str, str] = field(default_factory=lambda: {"dr@clinic.test": "secret"})
    refuse: dict[str, ReplyLike] = field(default_factory=dict)  # EHLO name or address -> verdict; "data" too
    throttled: set[str] = field(default_factory=set)  # user names refused as throttled
    # access token -> the mailboxes it opens, its own first (OAUTHBEARER / XOAUTH2);
    # the token "unavailable" stands for an identity provider that cannot be asked
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # client certificate (DER) → the application mailboxes it opens (EXTERNAL)
    certificates: dict[bytes, tuple[str, ...]] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)  # helo, mail, rcpt, data, deliver, auth: raise Failure
    room: int | None = None  # the memory budget for bodies (None: no budget)
    full: set[str] = field(default_factory=set)  # recipients whose mailbox is full: their DATA is refused
    deliveries: list[Delivered] = field(default_factory=list)
    resets: int = 0
    held: int = 0
    releases: int = 0

    def backend(self, peer: str = "", *, auth: bool = True) -> Backend:
        hold = _Hold(self) if self.room is not None else None
        return Backend(_Policy(self), _Delivery(self), _Auth(self) if auth else None, hold)

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail:
            raise Failure(f"{what} is down (internal detail)")


@dataclass
class _Policy:
    memory: Memory

    async def helo(self, facts: SessionFacts) -> ReplyLike | None:
        self.memory._maybe_fail("helo")
        return self.memory.refuse.get(facts.helo or "")

    async def mail(self, facts: SessionFacts, envelope: Envelope) -> ReplyLike:
        self.memory._maybe_fail("mail")
        if not envelope.sender:
            return replies.SENDER_OK if facts.listener == "mx" else replies.NULL_SENDER_NOT_ALLOWED
        if "@" not in envelope.sender:
            return replies.MALFORMED_ADDRESS
        return self.memory.refuse.get(envelope.sender, replies.SENDER_OK)

    async def rcpt(self, facts: SessionFacts, envelope: Envelope, recipient: Recipient) -> ReplyLike:
        self.memory._maybe_fail("rcpt")
        if "@" not in recipient.address:
            return replies.MALFORMED_ADDRESS
        return self.memory.refuse.get(recipient.address, replies.RECIPIENT_OK)

    async def data(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> ReplyLike:
        self.memory._maybe_fail("data")
        return self.memory.refuse.get("data", replies.OK)

    def reset(self) -> None:
        self.memory.resets += 1


@dataclass
class _Delivery:
    memory: Memory

    async def deliver(self, facts: SessionFacts, envelope: Envelope, message: bytes) -> str:
        self.memory._maybe_fail("deliver")
        if envelope.recipients and all(r.address in self.memory.full for r in envelope.recipients):
            raise DeliveryRefused(replies.MAILBOX_FULL)  # nothing stored (RFC 3463 X.2.2)
        self.memory.deliveries.append(Delivered(facts, envelope, message))
        return f"M{len(self.memory.deliveries)}"


TOKEN_CHALLENGE = b'{"status":"invalid_token"}'
UNAVAILABLE_TOKEN = "unavailable"  # noqa: S105 (stands for an identity provider down)


@dataclass
class _Auth:
    memory: Memory

    async def authenticate(self, facts: SessionFacts, credentials: Credentials) -> AuthResult:
        self.memory._maybe_fail("auth")
        if isinstance(credentials, TokenCredentials):
            return self._token(credentials)
        if isinstance(credentials, ExternalCredentials):
            der = facts.tls_info.peer_certificate if facts.tls_info is not None else None
            bound = self.memory.certificates.get(der or b"", ())
            wanted = credentials.authzid or (bound[0] if len(bound) == 1 else "")
            return AuthResult(wanted if wanted in bound else None)
        if credentials.username in self.memory.throttled:
            return AuthResult(None, throttled=True)
        ok = self.memory.users.get(credentials.username) == credentials.password
        return AuthResult(credentials.username if ok else None)

    def _token(self, credentials: TokenCredentials) -> AuthResult:
        if credentials.token == UNAVAILABLE_TOKEN:
            return AuthResult(None, temporary=True)
        allowed = self.memory.tokens.get(credentials.token, ())
        wanted = credentials.authzid or (allowed[0] if allowed else "")
        if wanted not in allowed:
            return AuthResult(None, challenge=TOKEN_CHALLENGE)
        return AuthResult(wanted)


@dataclass
class _Hold:
    memory: Memory

    async def room_for(self, size: int) -> bool:
        return self.memory.room is not None and size <= self.memory.room

    async def ensure(self, size: int) -> bool:
        if not await self.room_for(size):
            return False
        self.memory.held = max(self.memory.held, size)
        return True

    def release(self) -> None:
        self.memory.held = 0
        self.memory.releases += 1


def reply_lines(data: bytes) -> list[str]:
    return [line for line in data.decode("ascii").split("\r\n") if line]


def parse_reply(line: str) -> tuple[int, str, str]:
    """``code [enhanced ]text`` -> (code, enhanced or "", text) (RFC 5321 §4.2, RFC 2034 §4)."""
    code, rest = int(line[:3]), line[4:]
    first, _, after = rest.partition(" ")
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return code, first, after
    return code, "", rest


class Client:
    """One session, driven synchronously (its own event loop): ``send`` returns the reply lines."""

    def __init__(self, memory: Memory | None = None, config: SessionConfig | None = None, *,
                 peer: str = "192.0.2.1", tls: TlsFacts | None = None, auth: bool = True) -> None:
        self.memory = memory if memory is not None else Memory()
        self.config = config or SessionConfig(hostname=HOST)
        self.session = Session(self.memory.backend(peer, auth=auth), self.config, peer=peer, tls=tls)
        self.outputs: list[Output] = []
        self._runner = asyncio.Runner()

    def greeting(self) -> list[str]:
        return self._take(self.session.greeting())

    def send(self, data: bytes) -> list[str]:
        return self._take(self._runner.run(self.session.receive_data(data)))

    def line(self, text: str) -> list[str]:
        return self.send(text.encode("ascii") + b"\r\n")

    def start_tls(self, facts: TlsFacts = TLS) -> None:
        self.session.tls_started(facts)

    def timeout(self) -> list[str]:
        return self._take(self.session.timeout())

    def close(self) -> None:
        self.session.close()
        self._runner.close()

    def _take(self, output: Output) -> list[str]:
        self.outputs.append(output)
        return reply_lines(output.data)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _markers(output: Output) -> list[str]:
    return (["[starttls]"] if output.starttls else []) + (["[close]"] if output.closes else [])


def transcript(script: str, memory: Memory | None = None, config: SessionConfig | None = None, *,
               peer: str = "192.0.2.1", tls: TlsFacts | None = None, auth: bool = True) -> Client:
    """Run ``script`` (see the module text); fails with the transcript so far on a mismatch."""
    client = Client(memory, config, peer=peer, tls=tls, auth=auth)
    seen: list[str] = []
    got: deque[str] = deque(client.greeting())
    pending: list[str] = []

    def flush() -> None:
        if pending:
            assert not got, f"unexpected replies {list(got)} after:\n" + "\n".join(seen)
            output = client._runner.run(client.session.receive_data("".join(pending).encode("utf-8")))
            client.outputs.append(output)
            got.extend(reply_lines(output.data) + _markers(output))
            pending.clear()

    try:
        for raw in script.strip().splitlines():
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            side, _, content = text.partition(":")
            content = content.removeprefix(" ")
            if side == "C":
                pending.append(content + "\r\n")
            elif side == "S":
                flush()
                actual = got.popleft().rstrip(" ") if got else "(nothing)"  # script lines are stripped
                seen.append(f"S: {actual}")
                assert actual == content, f"expected {content!r}, got {actual!r} after:\n" + "\n".join(seen)
                if content == "[starttls]":
                    client.start_tls()
            else:
                raise ValueError(f"transcript line must start with 'C:' or 'S:': {raw!r}")
            if side == "C":
                seen.append(text)
        flush()
        assert not got, f"unexpected replies {list(got)} after:\n" + "\n".join(seen)
    except BaseException:
        client.close()
        raise
    return client


def is_catalogued(line: str, extra: tuple[ReplyLike, ...] = ()) -> bool:
    """Whether a reply line is a catalogue entry (code, enhanced code and text), or one of ``extra``."""
    known = [*replies.CATALOGUE.values(), *extra]
    return any(replies.format_reply(r) == line for r in known)


__all__ = ["HOST", "TLS", "Client", "Delivered", "Failure", "Memory", "is_catalogued", "parse_reply",
           "reply_lines", "transcript"]
