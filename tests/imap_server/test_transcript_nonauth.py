"""Transcripts: any-state and not-authenticated commands on the live listeners
(RFC 3501 §6.1, §6.2; STARTTLS / LOGINDISABLED; literal-size DoS before login)."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import pytest

from tests.imap_server.kit import PASSWORD, ImapEnv, tagged, wire_plain, wire_tls


def test_plain_port_greeting_offers_starttls_and_disables_login(env: ImapEnv) -> None:
    wire = wire_plain(env)
    assert wire.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    caps = wire.ok("CAPABILITY")[0]
    assert b"STARTTLS" in caps and b"LOGINDISABLED" in caps and b"AUTH=" not in caps
    assert tagged(wire.cmd('LOGIN "a@clinic.test" "x"')) == b"NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n"
    assert tagged(wire.cmd("AUTHENTICATE PLAIN")).startswith(b"NO [PRIVACYREQUIRED]")
    assert tagged(wire.cmd("SELECT INBOX")) == b"BAD Command not valid in this state\r\n"
    assert tagged(wire.ok("NOOP")) == b"OK NOOP completed\r\n"
    lines = wire.cmd("LOGOUT")
    assert lines[0] == b"* BYE Logging out\r\n" and tagged(lines) == b"OK LOGOUT completed\r\n"
    wire.close()


def test_imaps_greeting_offers_auth_plain(env: ImapEnv) -> None:
    wire = wire_tls(env)
    caps = wire.ok("CAPABILITY")[0]
    assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps
    assert b"IDLE" not in caps  # extensions are listed after login
    assert tagged(wire.cmd("STARTTLS")) == b"BAD TLS is already active\r\n"
    wire.close()


def test_login_shows_capabilities_and_wrong_password_is_generic(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env)
    assert tagged(wire.cmd(f'LOGIN "{account}" "wrong"')) == b"NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    assert tagged(wire.cmd('LOGIN "nobody@clinic.test" "wrong"')) == (
        b"NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
    ok = tagged(wire.ok(f'LOGIN "{account}" "{PASSWORD}"'))
    for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"SPECIAL-USE", b"CONDSTORE", b"ENABLE", b"APPENDLIMIT=", b"CHILDREN",
                b"NAMESPACE", b"UNSELECT", b"LITERAL+"):
        assert cap in ok
    assert tagged(wire.cmd(f'LOGIN "{account}" "{PASSWORD}"')) == b"BAD Command not valid in this state\r\n"
    wire.close()


def test_authenticate_plain_with_continuation_and_sasl_ir(env: ImapEnv, account: str) -> None:
    token = base64.b64encode(f"\0{account}\0{PASSWORD}".encode())
    wire = wire_tls(env)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response() == b"+ \r\n"
    wire.send(token + b"\r\n")
    assert wire.until("a1")[-1].startswith(b"a1 OK [CAPABILITY IMAP4rev1")
    wire.close()
    wire = wire_tls(env)
    assert tagged(wire.ok(b"AUTHENTICATE PLAIN " + token)).startswith(b"OK [CAPABILITY")
    wire.close()
    wire = wire_tls(env)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response() == b"+ \r\n"
    wire.send(b"*\r\n")
    assert wire.until("a1")[-1] == b"a1 BAD Authentication cancelled\r\n"
    assert tagged(wire.cmd("AUTHENTICATE KERBEROS_V4")).startswith(b"NO")
    wire.close()


def test_id_and_unknown_commands(env: ImapEnv) -> None:
    wire = wire_tls(env)
    lines = wire.ok('ID ("name" "test-client")')
    assert lines[0] == b'* ID ("name" "health-mail-gateway")\r\n'
    assert tagged(wire.cmd("XYZZY")) == b"BAD Unknown command\r\n"
    assert tagged(wire.cmd("LOGIN")).startswith(b"BAD")
    wire.close()


def test_huge_nonsync_literal_before_login_is_refused_without_reading_it(env: ImapEnv) -> None:
    """Literal-size DoS before login: the 200 MB never get read, the connection is closed."""
    sock = env.client_context().wrap_socket(socket.create_connection((env.host, env.imaps_port), timeout=10),
                                            server_hostname="localhost")
    sock.recv(4096)  # greeting
    sock.sendall(b"a1 LOGIN {200000000+}\r\n")
    started = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"a1 BAD [TOOBIG] Literal too large\r\n") and b"* BYE" in data
    assert time.monotonic() - started < 5
    sock.close()


def test_huge_sync_literal_before_login_gets_no_continuation(env: ImapEnv) -> None:
    wire = wire_tls(env)
    assert wire.cmd("LOGIN {200000000}")[-1] == b"t1 BAD [TOOBIG] Literal too large\r\n"
    assert tagged(wire.ok("NOOP")) == b"OK NOOP completed\r\n"  # still in sync
    wire.close()


def test_login_with_synchronising_literals(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env)
    user = account.encode()
    wire.send(b"a1 LOGIN {%d}\r\n" % len(user))
    assert wire.response() == b"+ Ready for literal data\r\n"
    wire.send(user + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    assert wire.until("a1")[-1].startswith(b"a1 OK [CAPABILITY")
    wire.close()


def test_starttls_then_login_and_injection_is_dropped(env: ImapEnv, account: str) -> None:
    client = env.starttls(account)
    assert client.select("INBOX")[0] == "OK"
    client.logout()
    # STARTTLS command injection: a command pipelined after STARTTLS in the clear is not run.
    sock = env.raw_socket()
    sock.recv(4096)
    sock.sendall(b"a1 STARTTLS\r\na2 NOOP\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    assert reply.startswith(b"a1 OK")
    tls = env.client_context().wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"a3 NOOP\r\n")
    answer = tls.recv(4096)
    assert answer == b"a3 OK NOOP completed\r\n"  # never "a2 ..."
    tls.close()


def test_line_too_long_closes(env: ImapEnv) -> None:
    wire = wire_tls(env)
    wire.send(b"a1 NOOP " + b"x" * 70000 + b"\r\n")
    assert wire.response() == b"a1 BAD Line too long\r\n"  # the tag is known before the line ends
    assert wire.response() == b"* BYE Too many protocol errors\r\n"
    with pytest.raises((ConnectionError, ssl.SSLError)):  # closed: the rest is never read as commands
        wire.response()
    wire.close()
