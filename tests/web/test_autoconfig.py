"""Client autoconfiguration (issue 19): Thunderbird autoconfig and Microsoft POX Autodiscover on
the live web listener, checked field by field; hostile and malformed requests refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as DET
import httpx
import pytest

from gateway.operations import client_config
from gateway.settings import ServerSettings, Settings
from gateway.testing.world import HOSTED
from tests.web.conftest import Site

HOST = "mx.gateway.test"  # server.hostname of the test home; client_hostname is unset
REQ = client_config.AUTODISCOVER_REQUEST_NS
RESP = client_config.AUTODISCOVER_RESPONSE_NS
OUTLOOK = client_config.OUTLOOK_SCHEMA
IMPLICIT = {993: True, 143: False, 465: True, 587: False}


def _client(site: Site) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{site.live.port('http')}", timeout=10)


def _request(address: str, schema: str = OUTLOOK) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{REQ}"><Request>'
            f"<EMailAddress>{address}</EMailAddress>"
            f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>").encode()


def _servers(root: ET.Element) -> list[dict[str, Any]]:
    provider = root.find("emailProvider")
    assert provider is not None
    found = []
    for element in provider:
        if element.tag in ("incomingServer", "outgoingServer"):
            found.append({"kind": element.tag, "type": element.get("type"),
                          "hostname": element.findtext("hostname"), "port": int(element.findtext("port") or 0),
                          "socketType": element.findtext("socketType"), "username": element.findtext("username"),
                          "auth": [a.text for a in element.findall("authentication")]})
    return found


def _check_thunderbird(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=300"
    root = DET.fromstring(response.content)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == HOSTED
    assert provider.findtext("domain") == HOSTED and HOSTED in (provider.findtext("displayName") or "")
    assert _servers(root) == [
        {"kind": kind, "type": proto, "hostname": HOST, "port": port, "socketType": socket,
         "username": "%EMAILADDRESS%", "auth": ["password-cleartext"]}
        for kind, proto, port, socket in (("incomingServer", "imap", 993, "SSL"),
                                          ("incomingServer", "imap", 143, "STARTTLS"),
                                          ("outgoingServer", "smtp", 465, "SSL"),
                                          ("outgoingServer", "smtp", 587, "STARTTLS"))]


def test_thunderbird_autoconfig_by_address_and_by_host(site: Site) -> None:
    with _client(site) as http:
        _check_thunderbird(http.get("/mail/config-v1.1.xml", params={"emailaddress": f"dr.martin@{HOSTED}"}))
        _check_thunderbird(http.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                                    params={"emailaddress": f"Dr.Martin@{HOSTED.upper()}"}))
        _check_thunderbird(http.get("/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{HOSTED}:8080"}))
        _check_thunderbird(http.get("/.well-known/autoconfig/mail/config-v1.1.xml", headers={"Host": HOSTED}))


def test_thunderbird_unknown_domains_get_404(site: Site) -> None:
    with _client(site) as http:
        for params, headers in (({"emailaddress": "someone@hopital.example"}, {}),  # trusted, not hosted
                                ({"emailaddress": "x@patients.gateway.test"}, {}),  # the patient domain
                                ({"emailaddress": "not an address"}, {}),
                                ({}, {"Host": "autoconfig.unknown.test"}),
                                ({}, {"Host": "127.0.0.1:8080"})):
            response = http.get("/mail/config-v1.1.xml", params=params, headers=headers)
            assert response.status_code == 404 and "no configuration" in response.text, (params, headers)
        assert http.post("/mail/config-v1.1.xml").status_code in (404, 405)  # GET only


def test_autodiscover_pox_field_by_field(site: Site) -> None:
    address = f"dr.martin@{HOSTED}"
    with _client(site) as http:
        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            response = http.post(path, content=_request(address), headers={"Content-Type": "text/xml"})
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"  # it names the address asked about
            assert response.headers["content-security-policy"].startswith("default-src 'none'")
            root = DET.fromstring(response.content)
            assert root.tag == f"{{{RESP}}}Autodiscover"
            account = root.find(f"{{{OUTLOOK}}}Response/{{{OUTLOOK}}}Account")
            assert account is not None
            assert account.findtext(f"{{{OUTLOOK}}}AccountType") == "email"
            assert account.findtext(f"{{{OUTLOOK}}}Action") == "settings"
            protocols = [{child.tag.split("}")[1]: child.text for child in p}
                         for p in account.findall(f"{{{OUTLOOK}}}Protocol")]
            assert [(p["Type"], int(p["Port"] or 0)) for p in protocols] == [
                ("IMAP", 993), ("IMAP", 143), ("SMTP", 465), ("SMTP", 587)]
            for p in protocols:
                port = int(p["Port"] or 0)
                assert p["Server"] == HOST and p["LoginName"] == address
                assert p["SSL"] == "on" and p["Encryption"] == ("SSL" if IMPLICIT[port] else "TLS")
                assert p["SPA"] == "off" and p["AuthRequired"] == "on" and p["DomainRequired"] == "off"


def test_autodiscover_refuses_unknown_domains_and_bad_requests(site: Site) -> None:
    path = "/autodiscover/autodiscover.xml"
    with _client(site) as http:
        response = http.post(path, content=_request("someone@hopital.example"))
        assert response.status_code == 404
        bad = {
            b"<not xml": "not well-formed XML",
            _request("no-at-sign"): "EMailAddress",
            _request(f"dr.martin@{HOSTED}", schema="http://schemas.microsoft.com/exchange/autodiscover/"
                                                   "mobilesync/responseschema/2006"): "only the response schema",
            f'<Autodiscover xmlns="{REQ}"><Request/></Autodiscover>'.encode(): "EMailAddress is missing",
            b"<Autodiscover><Request><EMailAddress>a@b.test</EMailAddress></Request></Autodiscover>":
                "expected an Autodiscover element",
        }
        for body, reason in bad.items():
            response = http.post(path, content=body)
            assert response.status_code == 400 and reason in response.text, (body, response.text)
        assert http.get(path).status_code in (404, 405)  # POST only
        big = _request(f"dr.martin@{HOSTED}") + b" " * client_config.MAX_REQUEST_BYTES
        assert http.post(path, content=big).status_code == 413
        chunked = http.post(path, content=iter([big[:100], big[100:]]))  # no Content-Length
        assert chunked.status_code == 413


def test_autodiscover_hostile_xml_is_refused(site: Site) -> None:
    """Entity expansion ("billion laughs"), an external entity and a bare DTD: 400, nothing expanded."""
    laughs = (f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
              '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
              f'<Autodiscover xmlns="{REQ}"><Request><EMailAddress>&lol3;@{HOSTED}</EMailAddress>'
              "</Request></Autodiscover>").encode()
    external = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                f'<Autodiscover xmlns="{REQ}"><Request><EMailAddress>&x;</EMailAddress></Request>'
                "</Autodiscover>").encode()
    dtd_only = f'<!DOCTYPE Autodiscover><Autodiscover xmlns="{REQ}"/>'.encode()
    with _client(site) as http:
        for body in (laughs, external, dtd_only):
            response = http.post("/autodiscover/autodiscover.xml", content=body)
            assert response.status_code == 400 and "DTDs and entities are not accepted" in response.text
            assert "lollol" not in response.text and "root:" not in response.text


def _settings(client_ca_file: str | None = None, **auth: Any) -> Settings:
    """Settings with the sign-in keys of issue 19: ``[auth]`` and ``[tls] client_ca_file``."""
    return cast(Settings, SimpleNamespace(server=ServerSettings(hostname="mail.gateway.test"),
                                          auth=SimpleNamespace(**auth),
                                          tls=SimpleNamespace(client_ca_file=client_ca_file)))


@pytest.mark.parametrize(("auth", "methods"), [
    ({"password_login": True, "oidc": None}, ["password-cleartext"]),
    ({"password_login": True, "oidc": SimpleNamespace(issuer="https://idp.test")}, ["OAuth2", "password-cleartext"]),
    ({"password_login": False, "oidc": SimpleNamespace(issuer="https://idp.test")}, ["OAuth2"]),
    ({"password_login": False, "oidc": None, "client_ca_file": "ca.pem"}, ["TLS-certificate"]),
    ({"password_login": True, "oidc": None, "client_ca_file": "ca.pem"}, ["password-cleartext", "TLS-certificate"]),
])
def test_auth_methods_follow_the_configuration(auth: dict[str, Any], methods: list[str]) -> None:
    setup = client_config.setup_for(_settings(**auth), HOSTED)
    root = DET.fromstring(client_config.thunderbird_xml(setup))
    assert all(s["auth"] == methods for s in _servers(root)) and len(_servers(root)) == 4


def test_client_hostname_setting() -> None:
    settings = Settings()
    assert client_config.client_hostname(settings) == settings.server.hostname
    changed = settings.model_copy(update={"server": ServerSettings(hostname="mx.gateway.test",
                                                                   client_hostname="Mail.Clinic.TEST.")})
    assert client_config.client_hostname(changed) == "mail.clinic.test"
    root = DET.fromstring(client_config.thunderbird_xml(client_config.setup_for(changed, HOSTED)))
    assert {s["hostname"] for s in _servers(root)} == {"mail.clinic.test"}


ISSUER = "https://auth.idp.test/realms/sante"
DISCOVERY = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
             "token_endpoint": f"{ISSUER}/protocol/openid-connect/token"}


def _oidc(required_scope: str = "mail") -> SimpleNamespace:
    return SimpleNamespace(issuer=ISSUER, required_scope=required_scope)


def test_thunderbird_oauth2_element_from_discovery() -> None:
    """``oAuth2`` after ``emailProvider`` (Thunderbird's ISPDB layout): the issuer's host name,
    ``openid`` and the required scope, the endpoints of the discovery document as given."""
    settings = _settings(password_login=False, oidc=_oidc("scope_all"))
    root = DET.fromstring(client_config.thunderbird_xml(client_config.setup_for(settings, HOSTED, DISCOVERY)))
    assert [child.tag for child in root] == ["emailProvider", "oAuth2"]
    oauth = root.find("oAuth2")
    assert oauth is not None
    assert {child.tag: child.text for child in oauth} == {
        "issuer": "auth.idp.test", "scope": "openid scope_all",
        "authURL": DISCOVERY["authorization_endpoint"], "tokenURL": DISCOVERY["token_endpoint"]}
    assert all(s["auth"] == ["OAuth2"] for s in _servers(root))


@pytest.mark.parametrize("discovery", [
    None,  # the issuer could not be reached
    {"issuer": ISSUER, "token_endpoint": DISCOVERY["token_endpoint"]},
    {**DISCOVERY, "authorization_endpoint": ""},
    {**DISCOVERY, "token_endpoint": ["https://auth.idp.test/token"]},
    {**DISCOVERY, "token_endpoint": "http://auth.idp.test/token"},  # in clear over a network
    {**DISCOVERY, "authorization_endpoint": "javascript:alert(1)"},
])
def test_thunderbird_oauth2_element_left_out_rather_than_guessed(discovery: dict[str, Any] | None) -> None:
    settings = _settings(password_login=True, oidc=_oidc())
    root = DET.fromstring(client_config.thunderbird_xml(client_config.setup_for(settings, HOSTED, discovery)))
    assert root.find("oAuth2") is None
    assert all(s["auth"] == ["OAuth2", "password-cleartext"] for s in _servers(root))  # tokens still accepted


def test_oauth2_element_needs_an_issuer() -> None:
    setup = client_config.setup_for(_settings(password_login=True, oidc=None), HOSTED, DISCOVERY)
    assert setup.oauth2_endpoints is None
    assert DET.fromstring(client_config.thunderbird_xml(setup)).find("oAuth2") is None


def test_oauth2_scope_keeps_openid_once() -> None:
    endpoints = client_config.oauth2_endpoints(cast(Any, _oidc("openid mail")), DISCOVERY)
    assert endpoints is not None and endpoints.scope == "openid mail"
    loopback = client_config.oauth2_endpoints(
        cast(Any, SimpleNamespace(issuer="http://127.0.0.1:8080", required_scope="mail")),
        {"authorization_endpoint": "http://127.0.0.1:8080/auth", "token_endpoint": "http://127.0.0.1:8080/token"})
    assert loopback is not None and loopback.issuer == "127.0.0.1"
