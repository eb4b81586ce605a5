"""The one security-headers middleware of the web app (patient inbox and admin console), in-process."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.web.admin import security as admin_security
from gateway.web.patient import security as patient_security
from gateway.web.security import SecurityHeaders, token_matches


def _hello(_: Request) -> Response:
    return PlainTextResponse("bonjour")


def _cached(_: Request) -> Response:
    return PlainTextResponse("css", headers={"Cache-Control": "public, max-age=60"})


def client(csp: str, hsts: int, scheme: str) -> TestClient:
    inner = Starlette(routes=[Route("/", _hello), Route("/static", _cached)])
    return TestClient(SecurityHeaders(inner, csp=csp, hsts_max_age=hsts), base_url=f"{scheme}://testserver")


@pytest.mark.parametrize("csp", [patient_security.CSP, admin_security.CSP], ids=["patient", "admin"])
def test_every_console_gets_its_csp_and_the_common_headers(csp: str) -> None:
    r = client(csp, 600, "https").get("/")
    assert r.headers["content-security-policy"] == csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    assert r.headers["strict-transport-security"] == "max-age=600; includeSubDomains"


def test_hsts_zero_means_no_header_and_plain_http_never_gets_one() -> None:
    assert "strict-transport-security" not in client(patient_security.CSP, 0, "https").get("/").headers
    assert "strict-transport-security" not in client(patient_security.CSP, 600, "http").get("/").headers


def test_a_route_keeps_its_own_caching() -> None:
    r = client(admin_security.CSP, 600, "http").get("/static")
    assert r.headers["cache-control"] == "public, max-age=60" and "pragma" not in r.headers


@pytest.mark.parametrize(("expected", "given", "ok"), [
    ("abc", "abc", True), ("abc", "abd", False), ("abc", "", False), (None, "abc", False), ("", "", False),
    ("abc", None, False), ("abc", ["abc"], False), ("abc", "é", False), ("é", "é", True),
])
def test_token_matches(expected: str | None, given: object, ok: bool) -> None:
    assert token_matches(expected, given) is ok
