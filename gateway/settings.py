"""Configuration: the validated settings, one frozen pydantic model per section.

Every key is documented in ``config/README.md`` (keep both in step). Reading the TOML file
and the ``GATEWAY__*`` environment into these models is :mod:`gateway.app.config`; errors
name the file (or environment variable), the key and what is wrong.

Layer: the bottom of ``gateway``, beside ``gateway.metrics``: every layer reads its own
section, so this module imports nothing of ``gateway``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_PREFIX = "GATEWAY__"


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line per problem)."""


def split_hostport(value: str) -> tuple[str, int]:
    text = value.strip()
    if text.startswith("["):  # [::1]:2525
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("expected [ipv6]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected host:port")
    if not host:
        raise ValueError("missing host before ':'")
    if not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return host, port


def _check_hostport(value: str) -> str:
    split_hostport(value)
    return value.strip()


HostPort = Annotated[str, Field(min_length=3)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    hostname: str = "mail.gateway.test"
    """Name used in the SMTP greeting, Received headers and the TLS certificate."""
    client_hostname: str = ""
    """Public name mail clients connect to for IMAP (993, 143) and submission (465, 587), named in
    the autoconfiguration answers and the SRV records (``gateway domain hosted dns``); empty:
    ``hostname``."""


class DomainSettings(_Section):
    patient_domain: str = "patients.gateway.test"
    """Domain of the patient mailboxes: ``<INS>@<patient_domain>``."""


class ListenSettings(_Section):
    mx: HostPort = "127.0.0.1:2525"
    submission: HostPort = "127.0.0.1:2587"
    submissions: HostPort = "127.0.0.1:2465"
    imap: HostPort = "127.0.0.1:1143"
    imaps: HostPort = "127.0.0.1:1993"
    http: HostPort = "127.0.0.1:8080"
    https: str = ""
    """Optional ``host:port`` serving the same web app over TLS with the ``[tls]`` server certificate
    (session cookies get ``Secure`` there); empty: off."""
    proxy_protocol: bool = False
    """Expect a PROXY protocol (v1/v2) header on SMTP and IMAP connections (behind a TCP load balancer)."""
    proxy_trusted: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    """Addresses or networks allowed to send PROXY headers (the load balancers)."""

    @field_validator("proxy_trusted")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("mx", "submission", "submissions", "imap", "imaps", "http")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return _check_hostport(value)

    @field_validator("https")
    @classmethod
    def _optional_host_port(cls, value: str) -> str:
        return _check_hostport(value) if value.strip() else ""

    def address(self, name: str) -> tuple[str, int]:
        return split_hostport(str(getattr(self, name)))


class TlsSettings(_Section):
    cert_file: Path = Path("tls/server.pem")
    key_file: Path = Path("tls/server.key")
    ca_file: Path = Path("tls/ca.pem")
    """CA bundle used to verify peers (outbound TLS and client certificates)."""
    client_ca_file: Path | None = None
    """CA bundle for the client certificates of application mailboxes (SASL EXTERNAL): when
    set, IMAP and submission ask for a client certificate verified against it and offer
    EXTERNAL to a connection that presented one; unset, EXTERNAL is not offered."""
    min_version: Literal["1.2", "1.3"] = "1.2"
    allow_auth_without_tls: bool = False
    """Development relaxation: offer AUTH/LOGIN before TLS. Never in production."""


class SmtpSettings(_Section):
    max_message_size: int = Field(default=26_214_400, ge=1024, le=1_073_741_824)
    """Largest message accepted, in bytes (25 MB), advertised with SIZE (RFC 1870)."""
    max_recipients: int = Field(default=100, ge=1, le=10_000)
    timeout_seconds: int = Field(default=300, ge=1, le=3600)
    """Time allowed for each command line, whole (RFC 5321 §4.5.3.2: 5 minutes), and the
    starting deadline of DATA (Postfix's ``smtpd_timeout`` with ``smtpd_per_request_deadline``)."""
    min_data_rate: int = Field(default=500, ge=1, le=100_000_000)
    """Bytes per second that keep DATA going: each read of N bytes moves the DATA deadline
    N / rate seconds later, never beyond ``timeout_seconds`` from now (Postfix's ``smtpd_min_data_rate``)."""
    processes: int = Field(default=1, ge=1, le=64)
    """Processes that accept SMTP sessions: 1 runs them in the serving process; N > 1 starts
    N - 1 more (``gateway smtp-process``) on the same listening sockets, for more cores."""
    mx_bare_line_endings: Literal["reject", "normalize"] = "reject"
    """A bare LF in a message on the MX: ``reject`` refuses it (``550 5.5.2``, SMTP smuggling);
    ``normalize`` stores it as CRLF. Either way only ``<CR><LF>.<CR><LF>`` ends DATA and a bare
    CR is refused (Postfix's ``smtpd_forbid_bare_newline``)."""
    submission_bare_line_endings: Literal["reject", "normalize"] = "normalize"
    """The same on the submission listeners (587 and 465): ``normalize`` by default, for
    software that writes LF-terminated lines (issue 17)."""

    def bare_line_endings(self, listener: str) -> Literal["reject", "normalize"]:
        """The mode of ``listener`` ("mx", "submission", "submissions"): ``smtp.session.SessionConfig``'s."""
        return self.mx_bare_line_endings if listener == "mx" else self.submission_bare_line_endings


class ImapSettings(_Section):
    idle_timeout_seconds: int = Field(default=1800, ge=10, le=86400)
    """Autologout after this long without a command, once logged in (RFC 3501 §5.4: at least 30 minutes)."""
    login_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    """A connection must have logged in this long after it was accepted, or gets ``* BYE``."""
    literals: Literal["LITERAL+", "LITERAL-", "none"] = "LITERAL+"
    """Non-synchronizing literals offered (RFC 7888): of any size, up to 4096 octets, or none."""
    expunged_uids_kept: int = Field(default=1000, ge=0, le=10_000_000)
    """UIDs of expunged messages kept per folder for QRESYNC's ``VANISHED (EARLIER)`` (RFC 7162
    §3.2.5): the ``expunged-uids`` job deletes older ones. A client resynchronising from before
    the oldest kept gets every UID below UIDNEXT that no longer exists instead (allowed by
    §3.2.5.2; correct, only longer). 0 keeps every one (unbounded)."""
    expunged_prune_per_run: int = Field(default=10_000, ge=1, le=10_000_000)
    """At most this many of those rows deleted each time the job runs (the next run goes on)."""


class QuotaSettings(_Section):
    """The default quota of every mailbox (RFC 9208; issue 18). An admin sets a mailbox's own
    limits with ``gateway quota set`` or the admin console; a mailbox without its own limit
    takes these. 0: no limit."""

    storage_kib: int = Field(default=0, ge=0, le=1 << 40)
    """STORAGE: the messages' sizes (RFC822.SIZE) summed, in KiB (1024 octets)."""
    messages: int = Field(default=0, ge=0, le=1 << 40)
    """MESSAGE: the number of messages, all folders together."""


class LimitsSettings(_Section):
    """Connection and memory budgets per process (issue 15). Connection caps are per listener
    and per process; 0 sizes a cap from the open-file limit (``gateway.net.budgets``)."""

    open_files: int = Field(default=65_536, ge=0, le=16_777_216)
    """At start the soft RLIMIT_NOFILE is raised to the hard limit, at most this; 0 leaves it alone."""
    reserved_files: int = Field(default=0, ge=0, le=1_000_000)
    """Descriptors kept out of the connection caps for the store, outbound, logs and files;
    0: 3 per database connection + 2 per outbound delivery + 128."""
    mx_connections: int = Field(default=0, ge=0, le=1_000_000)
    submission_connections: int = Field(default=0, ge=0, le=1_000_000)
    submissions_connections: int = Field(default=0, ge=0, le=1_000_000)
    imap_connections: int = Field(default=0, ge=0, le=1_000_000)
    imaps_connections: int = Field(default=0, ge=0, le=1_000_000)
    http_connections: int = Field(default=0, ge=0, le=1_000_000)
    mx_per_address: int = Field(default=50, ge=1, le=100_000)
    """Connections from one client address (IPv6: one /64) to the MX; 50 fits Postfix's default concurrency."""
    submission_per_address: int = Field(default=20, ge=1, le=100_000)
    submissions_per_address: int = Field(default=20, ge=1, le=100_000)
    imap_per_address: int = Field(default=50, ge=1, le=100_000)
    imaps_per_address: int = Field(default=50, ge=1, le=100_000)
    http_per_address: int = Field(default=50, ge=1, le=100_000)
    body_memory_bytes: int = Field(default=402_653_184, ge=65_536, le=1 << 40)
    """Memory for message bodies in flight per process (SMTP DATA, IMAP APPEND literals), each
    counted 4 times its size for the copies delivery makes (384 MiB: 3 messages of 25 MB,
    about 75 of 1 MB)."""
    body_memory_per_address: int = Field(default=134_217_728, ge=65_536, le=1 << 40)
    """Of which one client address (IPv6: one /64) may hold at most this much (128 MiB)."""
    body_memory_wait_seconds: float = Field(default=5.0, ge=0, le=600)
    """How long a session waits for room in the budget before a temporary failure."""

    def connections(self, listener: str) -> int:
        return int(getattr(self, f"{listener}_connections"))

    def per_address(self, listener: str) -> int:
        return int(getattr(self, f"{listener}_per_address"))


class HealthDocumentsSettings(_Section):
    """Health documents in patient mail (issue 21, docs/health-documents.md): IHE XDM archives
    are read at delivery to a patient mailbox, within these limits, their patient identifiers
    checked against the recipient's INS and what they hold sealed in the message summary."""

    check: bool = True
    """Read XDM archives at delivery (and refuse a patient recipient for another patient's
    document, or an ``INVISIBLE_PATIENT`` one). Off: archives are ordinary attachments."""
    max_entries: int = Field(default=64, ge=4, le=100_000)
    """Entries in one archive (files and folders); more: the archive is not read (delivered as
    an ordinary attachment, marked damaged)."""
    max_entry_bytes: int = Field(default=16 * 1024 * 1024, ge=65_536, le=1 << 32)
    """Uncompressed size of one entry."""
    max_total_bytes: int = Field(default=64 * 1024 * 1024, ge=65_536, le=1 << 34)
    """Uncompressed bytes read from one archive, all entries together."""
    max_ratio: int = Field(default=100, ge=2, le=100_000)
    """Uncompressed / compressed size of an entry larger than 64 KiB (a zip bomb's is in the thousands)."""


class StorageSettings(_Section):
    url: str = "sqlite:///gateway.db"
    """SQLAlchemy URL; relative SQLite paths are resolved against the config file's folder."""
    pool_size: int = Field(default=10, ge=1, le=500)
    max_overflow: int = Field(default=10, ge=0, le=500)
    auto_migrate: bool = True
    """Apply pending migrations at start (single node); multi-node deployments set false."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        scheme = value.partition("://")[0].lower()
        if scheme.startswith(("postgresql+", "postgres+")) and scheme.split("+", 1)[1] != "psycopg":
            raise ValueError(f"driver {scheme.split('+', 1)[1]} is not installed: write postgresql://... "
                             "(the gateway uses psycopg 3)")
        if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        try:
            make_url(value).port  # noqa: B018 (parses the port)
        except (ArgumentError, ValueError):
            raise ValueError("not a valid database URL (e.g. postgresql://user:password@host:5432/db)") from None
        return value


class KeySettings(_Section):
    master_key_file: Path = Path("keys/master.keys")
    """Versioned master keys (kept outside the database, mode 0600)."""
    allow_insecure_key_file: bool = False
    """Development only: accept a key file that group or others can access (warns loudly)."""


class PatientSettings(_Section):
    opposition_window_days: int = Field(default=42, ge=1, le=3650)
    activation_code_validity_days: int = Field(default=42, ge=1, le=3650)
    archive_retention_days: int = Field(default=3653, ge=1)
    """Closed spaces are kept archived this long (10 years), then purged."""
    deletion_deadline_days: int = Field(default=90, ge=1, le=366)
    recovery_code_validity_hours: int = Field(default=72, ge=1, le=24 * 42)
    """Validity of a new code issued for an open space (forgotten password, lost phone)."""
    recovery_mail_interval_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """At most one self-service ("mot de passe oublié") code mail per patient in this interval."""


class QueueSettings(_Section):
    """Outbound queue and its worker (SPEC §7): retries, expiry, leases, notifications."""

    retry_schedule_minutes: tuple[int, ...] = Field(default=(5, 15, 30, 60, 120, 240, 480, 720, 1440), min_length=1)
    """Delay before each retry; after the last one the last delay repeats."""
    max_age_hours: int = Field(default=120, ge=1, le=24 * 30)
    """A message not delivered after this long expires and bounces (RFC 5321 §4.5.4.1: 4-5 days)."""
    delay_notice_hours: int = Field(default=4, ge=0, le=24 * 30)
    """Send one "delayed" DSN after this long to senders who asked NOTIFY=DELAY; 0 never."""
    worker_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    lease_seconds: int = Field(default=900, ge=30, le=86400)
    """A claimed entry belongs to its worker this long; then another worker may take it."""
    batch_size: int = Field(default=50, ge=1, le=10000)
    concurrency: int = Field(default=10, ge=1, le=1000)
    connect_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    command_timeout_seconds: float = Field(default=300.0, gt=0, le=3600)
    notification_interval_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    notification_relay: str = ""
    """``host:port`` of a relay (smarthost) for the mail sent to patients' personal addresses
    (notifications, activation codes); empty: the MX of the address's domain."""

    @field_validator("notification_relay")
    @classmethod
    def _relay(cls, value: str) -> str:
        return _check_hostport(value) if value.strip() else ""

    @field_validator("retry_schedule_minutes")
    @classmethod
    def _positive_delays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError("every retry delay must be at least 1 minute")
        return value


class JobSettings(_Section):
    interval_seconds: float = Field(default=300.0, ge=1.0, le=86400.0)
    """How often ``gateway serve`` runs the lifecycle jobs (``gateway jobs list``)."""
    pro_inactivity_days: int = Field(default=365, ge=1, le=3650)
    pro_disable_after_warning_days: int = Field(default=30, ge=1, le=365)


class AuditSettings(_Section):
    """Audit retention (``gateway/store/audit_retention.py``): old entries exported, then pruned."""

    retention_days: int = Field(default=400, ge=0, le=36500)
    """Entries older than this are exported to ``export_dir`` and pruned behind a checkpoint
    (``gateway audit prune``, and the ``audit-retention`` job). At least 365: the patient's
    access history covers 12 months (MSSanté asks for 6 of functional traces). 0 keeps
    every entry."""
    export_dir: Path = Path("audit-archive")
    """Folder of the export files (JSON Lines, mode 0600), relative to the config file's folder."""
    prune_batch_size: int = Field(default=10000, ge=100, le=1_000_000)
    """Entries per export file and per delete transaction."""
    prune_batches_per_run: int = Field(default=10, ge=1, le=10000)
    """At most this many batches each time ``gateway serve`` runs the job (the next run goes on)."""

    @field_validator("retention_days")
    @classmethod
    def _keeps_a_year(cls, value: int) -> int:
        if 0 < value < 365:
            raise ValueError("must be at least 365 (the patient's access history covers 12 months), or 0 "
                             "to keep every entry")
        return value


class WebSettings(_Section):
    """The patient web inbox (issue 5): sessions, login throttling, reply attachments."""

    session_idle_minutes: int = Field(default=15, ge=1, le=240)
    """A session unused this long ends; the patient logs in again."""
    session_max_hours: int = Field(default=12, ge=1, le=72)
    """A session ends this long after login, however active."""
    login_delay_after: int = Field(default=3, ge=1, le=100)
    """Failed logins or activations (per INS) before answers are delayed."""
    login_lockout_after: int = Field(default=10, ge=2, le=1000)
    """Failed logins or activations (per INS) before a temporary lockout."""
    login_lockout_minutes: int = Field(default=15, ge=1, le=1440)
    max_attachment_bytes: int = Field(default=10_485_760, ge=1024, le=26_214_400)
    """Largest file a patient may attach to a reply."""
    max_total_attachment_bytes: int = Field(default=15_728_640, ge=1024, le=26_214_400)
    """Largest total of a reply's attachments (encoded, the message must stay under 25 MB)."""
    max_attachments: int = Field(default=5, ge=1, le=50)
    max_form_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    """Largest request body on every route without a limit of its own (forms, JSON): more gets
    413 before anything is read. Routes with uploads have theirs (attachments, trust-list import)."""
    hsts_max_age_seconds: int = Field(default=31_536_000, ge=0, le=63_072_000)
    """Strict-Transport-Security max-age, sent only on HTTPS requests."""


class OidcSettings(_Section):
    """OpenID Connect / OAuth 2.0 access tokens (SASL OAUTHBEARER, XOAUTH2): the one trusted
    issuer, checked by ``gateway/accounts/oidc.py``. Issuers are ``https://`` except on loopback."""

    issuer: str = Field(min_length=1)
    """The issuer URL (``iss``); its ``/.well-known/openid-configuration`` names the JWKS."""
    audience: str = Field(min_length=1)
    """This gateway's identifier as the tokens' audience (``aud``, or ``azp``)."""
    identity_claim: str = Field(default="sub", min_length=1)
    """Claim holding the professional identity (Pro Santé Connect: ``SubjectNameID``)."""
    required_scope: str = Field(min_length=1)
    """Scope a token must carry (``scope`` string or ``scp`` list)."""
    introspection_url: str = ""
    """RFC 7662 endpoint for opaque (non-JWT) tokens; empty: only JWT access tokens."""
    client_id: str = ""
    """The gateway's client at the provider, to authenticate to the introspection endpoint."""
    client_secret_file: Path | None = None
    """File holding that client's secret (one line)."""
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on ``exp`` and ``nbf``."""
    jwks_refresh_seconds: int = Field(default=30, ge=0, le=3600)
    """An unknown signing key (``kid``) fetches the JWKS again at most this often; after a failed
    discovery the autoconfiguration asks again at most this often."""
    discovery_max_age_seconds: int = Field(default=3600, ge=60, le=86400)
    """The discovery document is read again after this long (and sooner when the JWKS it names
    answers 404/410 or lacks a token's key): a provider that moves its endpoints is followed."""
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Timeout of each request to the provider (discovery, JWKS, introspection)."""
    session_grace_seconds: int = Field(default=3600, ge=0, le=86400)
    """An IMAP session opened with a token ends (``* BYE``) this long after the token's
    expiry, so that a professional whose rights were withdrawn is cut off."""

    @field_validator("issuer", "introspection_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        if value:
            check_provider_url(value)
        return value.strip()

    @model_validator(mode="after")
    def _introspection_client(self) -> OidcSettings:
        if self.introspection_url and (not self.client_id or self.client_secret_file is None):
            raise ValueError("introspection_url needs client_id and client_secret_file")
        return self


def check_provider_url(url: str) -> None:
    """An identity provider's URL must be ``https://``, or ``http://`` on a loopback address
    (tests, a local provider): tokens and keys must not travel in clear over a network."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute URL")
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host.lower() == "localhost"
        if loopback:
            return
        raise ValueError(f"{url!r} must use https:// (http:// only on a loopback address)")
    raise ValueError(f"{url!r} must be an https:// URL")


class AuthSettings(_Section):
    """Professionals' logins (SMTP AUTH, IMAP LOGIN/AUTHENTICATE): every attempt is counted
    before the password is checked (``gateway/accounts/throttle.py``)."""

    delay_after: int = Field(default=3, ge=1, le=100)
    """Failures of one account from one client network before answers are delayed."""
    lockout_after: int = Field(default=10, ge=2, le=1000)
    """Failures of one account from one client network before that pair is locked out."""
    ip_lockout_after: int = Field(default=30, ge=2, le=100_000)
    """Failures from one client network, any account, before the network is locked out."""
    account_slow_after: int = Field(default=30, ge=2, le=100_000)
    """Failures of one account from networks it never logged in from before such attempts
    are spaced out (one per growing interval, 60 s at most): the account is never locked."""
    lockout_minutes: int = Field(default=15, ge=1, le=1440)
    """How long a lockout lasts; failures also count over this window."""
    max_delay_seconds: float = Field(default=30.0, ge=0.0, le=300.0)
    """Longest delay before answering a failed attempt (the delay doubles from 1 s)."""
    password_login: bool = True
    """Passwords open mailboxes (IMAP LOGIN and AUTHENTICATE PLAIN, SMTP AUTH PLAIN and LOGIN).
    false: those mechanisms leave CAPABILITY and EHLO and are refused, so professionals sign in
    with their identity provider or applications with a certificate; an account can also be
    refused passwords on its own (``gateway pro password-login ADDRESS no``)."""
    oidc: OidcSettings | None = None
    """``[auth.oidc]``: the access-token issuer; absent: no token sign-in."""


class AdminSettings(_Section):
    """The admin console (``/admin``): server-side sessions of administrators."""

    session_idle_minutes: int = Field(default=30, ge=1, le=480)
    """An admin session unused this long ends."""
    session_max_hours: int = Field(default=8, ge=1, le=72)
    """An admin session ends this long after login, however active."""
    mediator_lookups_per_hour: int = Field(default=30, ge=1, le=3600)
    """Lookups by INS one mediator may make per hour, sustained (a new code counts as one too;
    administrators are not limited): :mod:`gateway.accounts.mediation_limit`."""
    mediator_lookup_burst: int = Field(default=10, ge=1, le=1000)
    """Lookups one mediator may make at once, before the hourly rate applies."""
    mediator_codes_per_hour: int = Field(default=10, ge=1, le=3600)
    """New activation codes one mediator may issue per hour, sustained."""
    mediator_code_burst: int = Field(default=5, ge=1, le=1000)
    """New activation codes one mediator may issue at once."""


class MetricsSettings(_Section):
    """Prometheus metrics (``/metrics``)."""

    enabled: bool = True
    """Serve ``/metrics`` on the HTTP listener, to holders of an admin API token only."""
    listen: str = ""
    """Also serve ``/metrics`` without a token on this separate ``host:port`` (a private
    network or loopback for the Prometheus scraper); empty: no separate listener."""

    @field_validator("listen")
    @classmethod
    def _hostport_or_empty(cls, value: str) -> str:
        return _check_hostport(value) if value.strip() else ""


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    domains: DomainSettings = DomainSettings()
    listen: ListenSettings = ListenSettings()
    tls: TlsSettings = TlsSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    quota: QuotaSettings = QuotaSettings()
    limits: LimitsSettings = LimitsSettings()
    health_documents: HealthDocumentsSettings = HealthDocumentsSettings()
    storage: StorageSettings = StorageSettings()
    keys: KeySettings = KeySettings()
    patients: PatientSettings = PatientSettings()
    queue: QueueSettings = QueueSettings()
    jobs: JobSettings = JobSettings()
    audit: AuditSettings = AuditSettings()
    web: WebSettings = WebSettings()
    auth: AuthSettings = AuthSettings()
    admin: AdminSettings = AdminSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()

    base_dir: Path = Field(default=Path("."), exclude=True)
    """Folder that relative paths are resolved against (the config file's folder)."""

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else (self.base_dir / value)

    @property
    def database_url(self) -> str:
        """The URL handed to SQLAlchemy: PostgreSQL always through psycopg 3, SQLite paths absolute."""
        url = self.storage.url
        scheme, sep, rest = url.partition("://")
        if scheme.lower() in ("postgresql", "postgres"):
            return f"postgresql+psycopg{sep}{rest}"
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix):]
            if rest and rest != ":memory:":
                return prefix + str((self.base_dir / rest).resolve())
        return url

    @property
    def audit_export_dir(self) -> Path:
        return self.path(self.audit.export_dir)

    @property
    def master_key_path(self) -> Path:
        return self.path(self.keys.master_key_file)
