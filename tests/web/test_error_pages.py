"""An unexpected error answers a French page (patient inbox, admin console) or JSON (admin API), issue 14."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.testing.live import LiveGateway, live_gateway, make_home

SECRET = "détail interne 253072A07300443"


async def boom(_: Request) -> Response:
    raise RuntimeError(SECRET)


def _with_boom(module: object, monkeypatch: pytest.MonkeyPatch) -> None:
    original = module.routes  # type: ignore[attr-defined]

    def routes(arg: object) -> list[BaseRoute]:
        return [*original(arg), Route("/boom", boom, methods=["GET", "POST"])]

    monkeypatch.setattr(module, "routes", routes)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveGateway]:
    from gateway.app.listeners import start_http
    from gateway.web.admin import api, pages
    from gateway.web.patient import login

    for module in (login, pages, api):
        _with_boom(module, monkeypatch)
    with live_gateway(make_home(tmp_path / "home"), factories=[start_http]) as running:
        yield running


def _get(live: LiveGateway, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{live.port('http')}{path}", timeout=10)


def _french_page(response: httpx.Response) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    body = response.text
    assert '<html lang="fr">' in body and "Erreur inattendue" in body and "Réessayez" in body
    assert "Internal Server Error" not in body and SECRET not in body and "RuntimeError" not in body
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


def test_patient_inbox_answers_a_french_error_page(live: LiveGateway, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.web"):
        response = _get(live, "/boom")
    _french_page(response)
    assert 'href="/"' in response.text
    (record,) = [r for r in caplog.records if r.name == "gateway.web"]
    assert "patient inbox" in record.getMessage() and "/boom" not in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is not None and SECRET in str(record.exc_info[1])
    assert _get(live, "/connexion").status_code == 200  # and it keeps serving


def test_admin_console_answers_a_french_error_page(live: LiveGateway) -> None:
    response = _get(live, "/admin/boom")
    _french_page(response)
    assert "Passerelle de messagerie santé" in response.text and "Administration" in response.text
    assert _get(live, "/admin/login").status_code == 200


def test_admin_api_keeps_json(live: LiveGateway) -> None:
    response = httpx.post(f"http://127.0.0.1:{live.port('http')}/admin/api/boom", timeout=10)
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal" and SECRET not in response.text
