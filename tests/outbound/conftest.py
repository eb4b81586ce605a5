"""Fixtures of the outbound tests: dev CA material, client TLS context, a loopback peer."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbound.client import client_tls_context
from tests.outbound.peer import PeerController, PeerHandler, Tls, make_tls, start_peer


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    folder = tmp_path / "tls"
    folder.mkdir()
    return make_tls(folder)


@pytest.fixture
def client_ctx(tls: Tls) -> ssl.SSLContext:
    return client_tls_context(ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file)


@pytest.fixture
def handler() -> PeerHandler:
    return PeerHandler()


@pytest.fixture
def peer(handler: PeerHandler, tls: Tls) -> Iterator[PeerController]:
    controller = start_peer(handler, tls)
    try:
        yield controller
    finally:
        controller.stop()
