"""The optional HTTPS listener (``listen.https``, issue 14): same web app, dev CA, Secure cookies."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest

from gateway.accounts.admins import add_admin
from gateway.accounts.patients import provision
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import free_port, listen_env

INS = "253072A07300443"
HSTS_MAX_AGE = 86_400  # not the default (31536000): both consoles must read the setting
ADMIN_PASSWORD = "une phrase d'administration"


@dataclass
class Site:
    live: LiveGateway
    code: str
    totp: pyotp.TOTP

    def client(self, scheme: str) -> httpx.Client:
        port = self.live.port(scheme)
        tls = ssl.create_default_context(cafile=self.live.ca_file)
        return httpx.Client(base_url=f"{scheme}://127.0.0.1:{port}", verify=tls, timeout=10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    from gateway.app.listeners import start_http, start_https

    env = {**listen_env(("http",)), "GATEWAY__LISTEN__HTTPS": f"127.0.0.1:{free_port()}",
           "GATEWAY__WEB__HSTS_MAX_AGE_SECONDS": str(HSTS_MAX_AGE)}
    with live_gateway(make_home(tmp_path / "home"), env=env, factories=[start_http, start_https]) as live:
        now = datetime.now(UTC)
        with live.services.db.write() as session:
            code = provision(session, live.services.keys, INS, email=None, now=now,
                             opposition_window=timedelta(days=42), code_validity=timedelta(days=42)).activation_code
            secret = add_admin(session, live.services.keys, "alice", ADMIN_PASSWORD, now=now).totp_secret
        yield Site(live, code, pyotp.TOTP(secret))


def cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header: attributes included)."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, name
    return found.group(1)


def activate_first_step(client: httpx.Client, code: str) -> httpx.Response:
    page = client.get("/activation")
    assert page.status_code == 200
    (anon_name, anon_header), = cookies(page).items()
    token = anon_header.split("=", 1)[1].split(";", 1)[0]
    return client.post("/activation", data={"csrf": hidden(page.text, "csrf"), "ins": INS, "code": code},
                       headers={"Cookie": f"{anon_name}={token}"})


def admin_login(client: httpx.Client, totp: pyotp.TOTP) -> httpx.Response:
    page = client.get("/admin/login")
    assert page.status_code == 200
    (login_name, login_header), = cookies(page).items()
    token = login_header.split("=", 1)[1].split(";", 1)[0]
    return client.post("/admin/login", headers={"Cookie": f"{login_name}={token}"},
                       data={"login_csrf": hidden(page.text, "login_csrf"), "name": "alice",
                             "password": ADMIN_PASSWORD, "code": totp.now()})


def test_https_serves_the_web_app_with_the_server_certificate(site: Site) -> None:
    with site.client("https") as client:
        response = client.get("/connexion")
        assert response.status_code == 200 and "Connexion" in response.text
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert client.get("/healthz").json()["status"] == "ok"
    with site.client("http") as client:  # the plain listener still serves, without HSTS
        response = client.get("/connexion")
        assert response.status_code == 200 and "strict-transport-security" not in response.headers
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the dev CA refuses it
        httpx.get(f"https://127.0.0.1:{site.live.port('https')}/", verify=ssl.create_default_context(), timeout=10)


def test_hsts_max_age_is_the_setting_on_the_patient_and_admin_pages(site: Site) -> None:
    """``web.hsts_max_age_seconds`` holds for the whole web app (the admin console once sent its own)."""
    expected = f"max-age={HSTS_MAX_AGE}; includeSubDomains"
    with site.client("https") as client:
        for path in ("/connexion", "/admin/login", "/admin/api/domains"):
            assert client.get(path).headers["strict-transport-security"] == expected, path
    with site.client("http") as client:  # RFC 6797 §7.2: never over plain HTTP
        for path in ("/connexion", "/admin/login"):
            assert "strict-transport-security" not in client.get(path).headers, path


def test_patient_session_cookie_is_secure_over_https(site: Site) -> None:
    with site.client("https") as client:
        response = activate_first_step(client, site.code)
    assert response.status_code == 303 and response.headers["location"] == "/activation/mot-de-passe"
    session = cookies(response)["__Host-hmg_session"]
    assert "; secure" in session.lower() and "httponly" in session.lower() and "path=/" in session.lower()


def test_patient_session_cookie_over_plain_http_has_no_secure_flag(site: Site) -> None:
    with site.client("http") as client:
        response = activate_first_step(client, site.code)
    assert response.status_code == 303
    assert "secure" not in cookies(response)["hmg_session"].lower()


def test_admin_session_cookie_is_secure_over_https(site: Site) -> None:
    with site.client("https") as client:
        response = admin_login(client, site.totp)
        assert response.status_code == 303
        session = cookies(response)["__Secure-hmg_admin"]
        assert "; secure" in session.lower() and "path=/admin" in session.lower()
        token = session.split("=", 1)[1].split(";", 1)[0]
        dashboard = client.get("/admin/", headers={"Cookie": f"__Secure-hmg_admin={token}"})
        assert dashboard.status_code == 200 and "Tableau de bord" in dashboard.text
