"""A small asyncio IMAP client and the IMAP loads of the benchmark (same load for every server).

The client reads responses literal-aware (``{n}`` then exactly n bytes), so a body that
contains a line looking like a tagged reply cannot confuse it. Every wait is bounded by
``timeout``.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from dataclasses import dataclass

LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
NEEDLE_EVERY = 100  # one message in 100 carries the search needle


class ImapError(Exception):
    pass


@dataclass
class Reply:
    untagged: list[bytes]
    tagged: bytes
    nbytes: int


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.tag = 0

    @classmethod
    async def connect(cls, port: int, timeout: float = 120.0, host: str = "127.0.0.1") -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 22), timeout)
        client = cls(reader, writer, timeout)
        greeting = await client._line()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {greeting[:80]!r}")
        return client

    async def _line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n"), self.timeout)

    async def _response_line(self) -> bytes:
        """One response line with its literals inlined."""
        parts = []
        while True:
            line = await self._line()
            parts.append(line)
            m = LITERAL.search(line)
            if not m:
                return b"".join(parts)
            parts.append(await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), self.timeout))

    async def command(self, text: str, *, collect: bool = True) -> Reply:
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        untagged: list[bytes] = []
        nbytes = 0
        while True:
            line = await self._response_line()
            nbytes += len(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(f"{text.split()[0]}: {line[:120]!r}")
                return Reply(untagged, line, nbytes)
            if collect:
                untagged.append(line)

    async def login(self, user: str, password: str) -> None:
        await self.command(f'LOGIN "{user}" "{password}"')

    async def append(self, mailbox: str, message: bytes) -> None:
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + f" APPEND {mailbox} {{{len(message)}}}\r\n".encode())
        line = await self._line()
        if not line.startswith(b"+"):
            raise ImapError(f"APPEND continuation: {line[:120]!r}")
        self.writer.write(message + b"\r\n")
        while True:
            line = await self._response_line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(f"APPEND: {line[:120]!r}")
                return

    async def logout(self) -> None:
        try:
            await self.command("LOGOUT")
        except (ImapError, asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (ConnectionError, TimeoutError):
            pass


def make_message(i: int, size: int = 10240) -> bytes:
    needle = " needle" if i % NEEDLE_EVERY == 0 else ""
    head = (f"From: Dr Bench <sender{i % 37}@bench.test>\r\n"
            f"To: Someone <reader@bench.test>\r\n"
            f"Subject: bench message {i}{needle}\r\n"
            f"Date: Mon, 23 Nov 2026 07:00:00 +0000\r\n"
            f"Message-ID: <bench.{i}@bench.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    rng = random.Random(i)
    words = ["patient", "dose", "analyse", "resultat", "ordonnance", "consultation", "imagerie", "suivi"]
    body = bytearray(b"marker needle here\r\n" if needle else b"")
    while len(head) + len(body) < size - 80:
        body += (" ".join(rng.choice(words) for _ in range(10)) + "\r\n").encode()
    return (head + bytes(body))[:size - 2].rstrip(b"\r\n") + b"\r\n"


@dataclass
class Account:
    port: int
    user: str
    password: str
    hosts: tuple[str, ...] = ("127.0.0.1",)  # one per server node, same port on each
    sessions: int = 0  # sessions opened so far: the next one goes to hosts[sessions % len(hosts)]

    def next_host(self) -> str:
        """The host of the next session: the nodes in turn (round robin)."""
        host = self.hosts[self.sessions % len(self.hosts)]
        self.sessions += 1
        return host


async def session(acct: Account, timeout: float = 300.0) -> Client:
    c = await Client.connect(acct.port, timeout, acct.next_host())
    await c.login(acct.user, acct.password)
    return c


async def fill(acct: Account, count: int, batch: int, deadline: float) -> list[float]:
    """APPEND ``count`` 10 KiB messages to INBOX over one connection; rate (msg/s) per batch."""
    c = await session(acct)
    rates = []
    try:
        i = 0
        while i < count and time.monotonic() < deadline:
            n = min(batch, count - i)
            start = time.perf_counter()
            for j in range(i, i + n):
                await c.append("INBOX", make_message(j))
            rates.append(n / (time.perf_counter() - start))
            i += n
    finally:
        await c.logout()
    return rates


async def fetch_all(acct: Account, items: str, expect: int) -> tuple[float, int]:
    """LOGIN + SELECT + UID FETCH 1:* items + LOGOUT: (seconds, bytes received)."""
    start = time.perf_counter()
    c = await session(acct)
    try:
        await c.command("SELECT INBOX")
        reply = await c.command(f"UID FETCH 1:* {items}")
    finally:
        await c.logout()
    elapsed = time.perf_counter() - start
    got = sum(1 for line in reply.untagged if b" FETCH " in line[:40])
    if got != expect:
        raise ImapError(f"UID FETCH 1:* {items}: {got} responses, expected {expect}")
    return elapsed, reply.nbytes


async def search(acct: Account, criteria: str, expect: int) -> float:
    c = await session(acct)
    try:
        await c.command("SELECT INBOX")
        start = time.perf_counter()
        reply = await c.command(f"UID SEARCH {criteria}")
        elapsed = time.perf_counter() - start
    finally:
        await c.logout()
    found = sum(len(line.split()) - 2 for line in reply.untagged if line.startswith(b"* SEARCH"))
    if found != expect:
        raise ImapError(f"SEARCH {criteria}: {found} hits, expected {expect}")
    return elapsed


async def single_latency(acct: Account, count: int, seed: int) -> tuple[float, float]:
    """``count`` × UID FETCH <random uid> BODY.PEEK[] on one selected session: (p50, p95) ms."""
    c = await session(acct)
    try:
        await c.command("SELECT INBOX")
        reply = await c.command("UID SEARCH ALL")
        uids = [int(u) for line in reply.untagged if line.startswith(b"* SEARCH") for u in line.split()[2:]]
        rng = random.Random(seed)
        times = []
        for _ in range(count):
            uid = rng.choice(uids)
            start = time.perf_counter()
            await c.command(f"UID FETCH {uid} BODY.PEEK[]")
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        await c.logout()
    q = statistics.quantiles(times, n=20)
    return statistics.median(times), q[18]


async def concurrent_clients(acct: Account, clients: int, rounds: int, per_fetch: int,
                             total: int) -> tuple[float, list[str]]:
    """``clients`` sessions at once, each ``rounds`` × (SELECT + UID FETCH of ``per_fetch`` headers).

    Returns pairs per second (completed SELECT+FETCH pairs over the wall time, logins
    included) and the errors of the clients that failed."""
    done = [0]
    errors: list[str] = []

    async def one(k: int) -> None:
        try:
            c = await session(acct)
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:120])
            return
        try:
            rng = random.Random(k)
            for _ in range(rounds):
                await c.command("SELECT INBOX")
                first = rng.randrange(1, max(2, total - per_fetch))
                reply = await c.command(f"FETCH {first}:{first + per_fetch - 1} (FLAGS RFC822.SIZE ENVELOPE)")
                if len(reply.untagged) < per_fetch:
                    raise ImapError(f"FETCH {per_fetch} headers: {len(reply.untagged)} lines")
                done[0] += 1
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:120])
        finally:
            await c.logout()

    start = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)))
    return done[0] / (time.perf_counter() - start), errors


async def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        c = await Client.connect(port, 5.0, host)
    except (OSError, TimeoutError, ImapError, asyncio.IncompleteReadError):
        return False
    await c.logout()
    return True
