"""A bounded fuzz of the live server (DESIGN "fuzzing with a stated invariant"): random
and mutated commands over real sockets, before and after login. Invariant: the server
answers or closes the connection, never crashes, and memory stays bounded; afterwards
a normal session still works and returns the stored bytes."""

from __future__ import annotations

import logging
import os
import random
import socket
import ssl
import time

import pytest

from tests.imap_server.kit import MESSAGES, PASSWORD, ImapEnv

SEEDS = [
    b"CAPABILITY", b"NOOP", b"SELECT INBOX", b"EXAMINE Sent", b'LIST "" "*"', b"LSUB \"\" %",
    b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)", b"FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    b"UID FETCH 1:* (BODYSTRUCTURE ENVELOPE BODY.PEEK[1.MIME]<0.20>)", b"SEARCH OR FROM labo SUBJECT compte",
    b"UID SEARCH CHARSET UTF-8 TEXT {5+}\r\nhello", b"STORE 1 +FLAGS (\\Seen)",
    b"UID STORE 2 -FLAGS.SILENT (\\Flagged)",
    b"COPY 1 Archive", b"UID MOVE 9 Trash", b"CREATE fuzz/a", b"RENAME fuzz/a fuzz/b", b"DELETE fuzz/b",
    b"APPEND Drafts (\\Draft) {12+}\r\nSubject: x\r\n\r\n", b"ENABLE CONDSTORE", b"ID NIL", b"NAMESPACE",
    b"FETCH 1 (FLAGS) (CHANGEDSINCE 1)", b"UID EXPUNGE 1:2", b"CHECK", b"UNSELECT", b"CLOSE",
    b"LOGIN {5}", b"AUTHENTICATE PLAIN =", b"STARTTLS",
]
TOKENS = [b"(", b")", b"[", b"]", b"{", b"}", b"{4294967296}", b"{3+}", b"*", b"%", b"\\", b'"', b"NIL", b"1:*",
          b"0", b"4294967295", b"\x00", b"\xff", b"BODY[", b"<0.>", b"UID", b"\r", b" ", b"&-", b"&AMk"]


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2:
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            data[pos:pos] = bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 20)))
        else:
            data = data[: max(1, pos)]
    return bytes(data)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _connect(env: ImapEnv, login: str | None) -> ssl.SSLSocket:
    sock = env.client_context().wrap_socket(socket.create_connection((env.host, env.imaps_port), timeout=5),
                                            server_hostname="localhost")
    sock.recv(4096)
    if login:
        sock.sendall(f'L LOGIN "{login}" "{PASSWORD}"\r\nS SELECT INBOX\r\n'.encode())
        deadline = time.monotonic() + 5
        buf = b""
        while b"S OK" not in buf and b"S NO" not in buf and time.monotonic() < deadline:
            buf += sock.recv(65536)
    sock.settimeout(0.05)
    return sock


def _drain(sock: ssl.SSLSocket) -> bool:
    """Read what comes; False when the server closed the connection."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return False
    except (TimeoutError, ssl.SSLError):
        return True
    except OSError:
        return False


def test_random_and_mutated_commands_never_break_the_server(env: ImapEnv, filled: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    rng = random.Random(4)
    before = _rss()
    deadline = time.monotonic() + 25
    sent = 0
    sock = _connect(env, filled)
    while sent < 400 and time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.15:
            line = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        elif roll < 0.45:  # valid commands in random order: the handlers run, not only the parser
            line = rng.choice(SEEDS)
        else:
            line = _mutate(rng, rng.choice(SEEDS))
        try:
            sock.sendall(b"f%d " % sent + line + b"\r\n")
            alive = _drain(sock)
        except OSError:
            alive = False
        sent += 1
        if not alive:
            sock.close()
            sock = _connect(env, filled if rng.random() < 0.8 else None)
    sock.close()
    assert sent >= 100
    assert _rss() - before < 200 * 1024 * 1024  # the gateway runs in this process
    errors = [r for r in caplog.records if r.name.startswith("imap") and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]  # no server bug (NO [SERVERBUG]) was hit
    # The server still serves a normal session with the stored bytes.
    fresh = env.new_account()
    for raw in MESSAGES:
        env.deliver(fresh, raw)
    client = env.imaps(fresh)
    client.select("INBOX", readonly=True)
    typ, data = client.uid("FETCH", "1:3", "(BODY.PEEK[])")
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert typ == "OK" and bodies == list(MESSAGES)
    client.logout()
