"""Client autoconfiguration (issue 19): what a mail client of a hosted domain is told to use.

* Thunderbird's autoconfig: the ``clientConfig`` XML, format version 1.1
  (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat), served at
  ``/.well-known/autoconfig/mail/config-v1.1.xml`` and ``/mail/config-v1.1.xml``.
* Microsoft Autodiscover "POX" (plain old XML, [MS-OXDSCLI] §2.2.4): the request names the
  ``EMailAddress``; the answer's ``Account`` has one ``Protocol`` per server.
* The DNS records that point clients here (:mod:`gateway.operations.client_dns`).

Every answer names the same servers: IMAP on 993 (implicit TLS) and 143 (STARTTLS), submission
on 465 (implicit TLS) and 587 (STARTTLS), implicit TLS first (RFC 8314 §5.1), all on
``server.client_hostname`` (``server.hostname`` when empty). Only hosted domains are answered.

With ``[auth.oidc]``, Thunderbird's document also carries its ``oAuth2`` element (a sibling of
``emailProvider``, as in Thunderbird's ISPDB: ``issuer`` the issuer's host name, ``scope``,
``authURL``, ``tokenURL``), the two URLs taken from the issuer's discovery document
(OpenID Connect Discovery 1.0 §3: ``authorization_endpoint``, ``token_endpoint``) that the token
verifier caches. When that document cannot be had, or names unusable URLs, the element is left
out rather than guessed (:func:`oauth2_endpoints`).

Request XML is parsed with defusedxml: DTDs, entities and external references are refused
(no entity expansion, no external fetch), and the body is bounded before it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.settings import OidcSettings, Settings, check_provider_url
from gateway.store.models import HostedDomain
from routing.address import Address, InvalidAddress, normalise_domain, parse_address

MAX_REQUEST_BYTES = 8192  # an Autodiscover request is a few hundred bytes
CONFIG_VERSION = "1.1"
AUTODISCOVER_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True)
class Server:
    """One server a client may use: protocol (``imap``/``smtp``), port and how TLS starts."""

    protocol: str
    port: int
    implicit_tls: bool  # True: TLS from the first byte (RFC 8314); False: STARTTLS

    @property
    def socket_type(self) -> str:
        """Thunderbird's ``socketType``."""
        return "SSL" if self.implicit_tls else "STARTTLS"

    @property
    def encryption(self) -> str:
        """Autodiscover's ``Encryption`` ([MS-OXDSCLI] §2.2.4.1.1.2.3.10)."""
        return "SSL" if self.implicit_tls else "TLS"


# RFC 8314 §5.1 / RFC 6186: implicit TLS preferred, STARTTLS as the fallback.
SERVERS: tuple[Server, ...] = (
    Server("imap", 993, True), Server("imap", 143, False),
    Server("smtp", 465, True), Server("smtp", 587, False),
)


@dataclass(frozen=True)
class OAuth2Endpoints:
    """Thunderbird's ``oAuth2`` element: where a client obtains its access token."""

    issuer: str
    """The issuer's host name (Thunderbird keys the stored tokens by it)."""
    scope: str
    """What the client asks for: ``openid`` (OpenID Connect Core §3.1.2.1: every OpenID request
    names it) and ``[auth.oidc] required_scope``."""
    auth_url: str
    """The authorization endpoint (``authorization_endpoint``)."""
    token_url: str
    """The token endpoint (``token_endpoint``)."""


def oauth2_endpoints(oidc: OidcSettings, discovery: Mapping[str, Any] | None) -> OAuth2Endpoints | None:
    """The ``oAuth2`` element for ``oidc`` from the issuer's ``discovery`` document, or ``None``
    when there is no document (the issuer unreachable) or it lacks either endpoint, or names one
    that is not ``https://`` (``http://`` on loopback only, as the issuer itself): a client is
    never sent to a URL made up here or to one that would carry credentials in clear."""
    if discovery is None:
        return None
    urls = [discovery.get("authorization_endpoint"), discovery.get("token_endpoint")]
    checked: list[str] = []
    for url in urls:
        if not isinstance(url, str) or not url.strip():
            return None
        try:
            check_provider_url(url)
        except ValueError:
            return None
        checked.append(url.strip())
    host = urlsplit(oidc.issuer).hostname
    if not host:
        return None
    scope = " ".join(dict.fromkeys(["openid", *oidc.required_scope.split()]))
    return OAuth2Endpoints(issuer=host, scope=scope, auth_url=checked[0], token_url=checked[1])


@dataclass(frozen=True)
class ClientSetup:
    """What every client of ``domain`` is told."""

    domain: str
    host: str
    password: bool
    oauth2: bool
    certificate: bool = False
    oauth2_endpoints: OAuth2Endpoints | None = None
    """Thunderbird's ``oAuth2`` element; ``None``: left out (no issuer, or no discovery)."""

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """Thunderbird's ``authentication`` values, in order of preference: OAuth2 (Pro Santé
        Connect tokens) when an issuer is configured, the password when password login is
        allowed, the client certificate (SASL EXTERNAL) when ``[tls] client_ca_file`` is set.
        Only what the servers really accept is named."""
        return ((("OAuth2",) if self.oauth2 else ()) + (("password-cleartext",) if self.password else ())
                + (("TLS-certificate",) if self.certificate else ()))


class RequestError(ValueError):
    """An Autodiscover request that cannot be read; the message says why (shown to the client)."""


def client_hostname(settings: Settings) -> str:
    """The host name clients connect to for IMAP and submission."""
    server = settings.server
    return (server.client_hostname or server.hostname).strip().rstrip(".").lower()


def _auth_choices(settings: Settings) -> tuple[bool, bool]:
    """(password login allowed: ``[auth] password_login``, OpenID Connect issuer configured:
    ``[auth.oidc]``)."""
    auth = settings.auth
    return auth.password_login, bool(auth.oidc is not None and auth.oidc.issuer)


def hosted(session: Session, domain: str) -> str | None:
    """``domain`` normalised if it is hosted here, else None."""
    try:
        name = normalise_domain(domain)
    except InvalidAddress:
        return None
    found = session.execute(select(HostedDomain.name).where(HostedDomain.name == name)).scalar_one_or_none()
    return found


def setup_for(settings: Settings, domain: str, discovery: Mapping[str, Any] | None = None) -> ClientSetup:
    """What clients of ``domain`` are told; ``discovery``: the issuer's discovery document when
    it could be had (for Thunderbird's ``oAuth2`` element)."""
    password, oauth2 = _auth_choices(settings)
    oidc = settings.auth.oidc
    endpoints = oauth2_endpoints(oidc, discovery) if oauth2 and oidc is not None else None
    return ClientSetup(domain=domain, host=client_hostname(settings), password=password, oauth2=oauth2,
                       certificate=settings.tls.client_ca_file is not None, oauth2_endpoints=endpoints)


def domain_of_request(emailaddress: str | None, host_header: str | None) -> str | None:
    """The domain a Thunderbird request asks about: the ``emailaddress`` parameter's, else the
    ``Host`` the client reached (``autoconfig.DOMAIN`` or ``DOMAIN``, port dropped)."""
    if emailaddress:
        try:
            return parse_address(emailaddress).domain
        except InvalidAddress:
            return None
    if not host_header:
        return None
    host = host_header.strip().lower()
    if host.startswith("["):
        return None  # an IP literal names no domain
    host = host.rsplit(":", 1)[0] if ":" in host else host
    for prefix in ("autoconfig.", "autodiscover."):
        if host.startswith(prefix):
            host = host[len(prefix):]
    try:
        return normalise_domain(host)
    except InvalidAddress:
        return None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def thunderbird_xml(setup: ClientSetup) -> bytes:
    """The ``clientConfig`` document (version 1.1) for ``setup``."""
    root = ET.Element("clientConfig", {"version": CONFIG_VERSION})
    provider = _sub(root, "emailProvider", id=setup.domain)
    _sub(provider, "domain", setup.domain)
    _sub(provider, "displayName", f"{setup.domain} (messagerie de santé)")
    _sub(provider, "displayShortName", setup.domain)
    for server in SERVERS:
        element = _sub(provider, "incomingServer" if server.protocol == "imap" else "outgoingServer",
                       type=server.protocol)
        _sub(element, "hostname", setup.host)
        _sub(element, "port", str(server.port))
        _sub(element, "socketType", server.socket_type)
        _sub(element, "username", "%EMAILADDRESS%")
        for method in setup.auth_methods:
            _sub(element, "authentication", method)
    oauth = setup.oauth2_endpoints
    if oauth is not None:  # after emailProvider, as in Thunderbird's ISPDB
        element = _sub(root, "oAuth2")
        _sub(element, "issuer", oauth.issuer)
        _sub(element, "scope", oauth.scope)
        _sub(element, "authURL", oauth.auth_url)
        _sub(element, "tokenURL", oauth.token_url)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def parse_autodiscover(body: bytes) -> Address:
    """The ``EMailAddress`` of a POX Autodiscover request ([MS-OXDSCLI] §2.2.3).

    Raises :class:`RequestError` for a body over :data:`MAX_REQUEST_BYTES`, XML that is not
    well formed or holds a DTD or entity, another root element, a response schema other than
    Outlook's, or a missing or invalid address."""
    if len(body) > MAX_REQUEST_BYTES:
        raise RequestError(f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        root = DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise RequestError("DTDs and entities are not accepted") from None
    except ET.ParseError as exc:
        raise RequestError(f"not well-formed XML ({exc})") from None
    ns = f"{{{AUTODISCOVER_REQUEST_NS}}}"
    if root.tag != f"{ns}Autodiscover":
        raise RequestError(f"expected an Autodiscover element in the {AUTODISCOVER_REQUEST_NS} namespace")
    schema = root.findtext(f"{ns}Request/{ns}AcceptableResponseSchema")
    if schema is not None and schema.strip() != OUTLOOK_SCHEMA:
        raise RequestError(f"only the response schema {OUTLOOK_SCHEMA} is offered")
    address = root.findtext(f"{ns}Request/{ns}EMailAddress")
    if not address or not address.strip():
        raise RequestError("Request/EMailAddress is missing")
    try:
        return parse_address(address)
    except InvalidAddress as exc:
        raise RequestError(f"EMailAddress: {exc}") from None


def autodiscover_xml(setup: ClientSetup, address: Address) -> bytes:
    """The POX response ([MS-OXDSCLI] §2.2.4): one ``Protocol`` per server, implicit TLS first."""
    root = ET.Element("Autodiscover", {"xmlns": AUTODISCOVER_RESPONSE_NS})
    response = _sub(root, "Response", xmlns=OUTLOOK_SCHEMA)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for server in SERVERS:
        protocol = _sub(account, "Protocol")
        _sub(protocol, "Type", server.protocol.upper())
        _sub(protocol, "Server", setup.host)
        _sub(protocol, "Port", str(server.port))
        _sub(protocol, "DomainRequired", "off")
        _sub(protocol, "LoginName", str(address))
        _sub(protocol, "SPA", "off")
        _sub(protocol, "SSL", "on")
        _sub(protocol, "Encryption", server.encryption)
        _sub(protocol, "AuthRequired", "on")
        if server.protocol == "smtp":
            _sub(protocol, "UsePOPAuth", "off")
            _sub(protocol, "SMTPLast", "off")
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
