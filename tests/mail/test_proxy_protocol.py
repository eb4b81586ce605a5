"""PROXY protocol v1/v2 on the SMTP listeners (issue 7): off by default, the real client
address reaches the audit trail, untrusted senders of headers are refused."""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.store.models import AuditEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src: str) -> bytes:
    return f"PROXY TCP4 {src} 127.0.0.1 40000 25\r\n".encode()


def v2(src: str) -> bytes:
    addresses = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, 25)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    env = {**listen_env(), "GATEWAY__LISTEN__PROXY_PROTOCOL": "true",
           "GATEWAY__TLS__ALLOW_AUTH_WITHOUT_TLS": "true"}
    with live_gateway(home, env=env) as live:
        yield world, live


def login_through_proxy(live: LiveGateway, world: World, header: bytes, password: str) -> bytes:
    with socket.create_connection(("127.0.0.1", live.port("submission")), timeout=10) as sock:
        sock.sendall(header)
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        sock.sendall(b"EHLO lb.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sock.sendall(b"AUTH PLAIN " + base64.b64encode(f"\0{world.pro}\0{password}".encode()) + b"\r\n")
        return f.readline()


def refused(sock: socket.socket) -> bool:
    """Closed (or reset) without a greeting."""
    sock.settimeout(15)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def login_peers(live: LiveGateway) -> list[str | None]:
    with live.services.db.read() as s:
        return list(s.execute(select(AuditEntry.peer).where(AuditEntry.action == "smtp.login")
                              .order_by(AuditEntry.id)).scalars())


@pytest.mark.parametrize(("version", "src"), [(v1, "127.10.20.30"), (v2, "127.40.50.60")])  # loopback: plain AUTH ok
def test_client_address_from_the_proxy_header_reaches_the_audit(proxied: tuple[World, LiveGateway], version: object,
                                                               src: str) -> None:
    world, live = proxied
    reply = login_through_proxy(live, world, version(src), PASSWORD)  # type: ignore[operator]
    assert reply.startswith(b"235")
    assert login_peers(live)[-1] == src


def test_connection_without_header_is_refused(proxied: tuple[World, LiveGateway]) -> None:
    _, live = proxied
    with socket.create_connection(("127.0.0.1", live.port("submission")), timeout=10) as sock:
        sock.sendall(b"EHLO direct.test\r\n")
        assert refused(sock)


def test_header_from_untrusted_proxy_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    env = {**listen_env(), "GATEWAY__LISTEN__PROXY_PROTOCOL": "true",
           "GATEWAY__LISTEN__PROXY_TRUSTED": '["192.0.2.0/24"]'}
    with live_gateway(home, env=env) as live, socket.create_connection(
            ("127.0.0.1", live.port("mx")), timeout=10) as sock:
        sock.sendall(v1("198.51.100.7"))
        assert refused(sock)


def test_off_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    with live_gateway(home) as live, socket.create_connection(("127.0.0.1", live.port("mx")), timeout=10) as sock:
        assert sock.recv(1024).startswith(b"220")


@pytest.mark.parametrize(("version", "src"), [(v1, "127.11.22.33"), (v2, "127.44.55.66")])
def test_imap_client_address_from_the_proxy_header(proxied: tuple[World, LiveGateway], version: object,
                                                   src: str) -> None:
    world, live = proxied
    with socket.create_connection(("127.0.0.1", live.port("imap")), timeout=10) as sock:
        sock.sendall(version(src))  # type: ignore[operator]
        f = sock.makefile("rb")
        assert f.readline().startswith(b"* OK")
        sock.sendall(f'a1 LOGIN "{world.pro}" "{PASSWORD}"\r\n'.encode())
        while not (line := f.readline()).startswith(b"a1 "):
            pass
        assert line.startswith(b"a1 OK"), line
    with live.services.db.read() as s:
        peers = list(s.execute(select(AuditEntry.peer).where(AuditEntry.action == "imap.login")
                               .order_by(AuditEntry.id)).scalars())
    assert peers[-1] == src


def test_imap_without_header_is_refused(proxied: tuple[World, LiveGateway]) -> None:
    _, live = proxied
    with socket.create_connection(("127.0.0.1", live.port("imap")), timeout=10) as sock:
        sock.sendall(b"a1 CAPABILITY\r\n")
        assert refused(sock)
