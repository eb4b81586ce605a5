"""Outbound SMTP delivery to a trusted domain with aiosmtplib (SPEC §6, §7).

* STARTTLS is required (RFC 3207); without it nothing is sent. The peer certificate is
  verified against ``tls.ca_file`` and its name; our certificate is presented as client
  certificate so the peer can match our operator DN.
* RFC 3461 (DSN): RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT when the peer offers DSN.
* RFC 6531 (SMTPUTF8): a message that needs it (a UTF-8 address in the envelope, UTF-8 in its
  header, RFC 6532) goes with ``SMTPUTF8`` to a peer that offers it; to one that does not, it is
  never downgraded: it fails for good with ``5.6.7`` (RFC 6531 §3.2, RFC 3463) and a DSN follows.
* RFC 5321 §4.2.1: 4xx replies are temporary, 5xx permanent; a failed connection is temporary.
  A peer certificate that does not verify is named in the report (and so in the DSN) with the
  reason our MX gives its own peers (:mod:`gateway.net.peer_certs`: untrusted issuer, expired...).
* What it sends is DKIM-signed before (:mod:`gateway.outbound.signing`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib

from gateway.net.peer_certs import WORDS, reason_for
from gateway.net.tls import peer_dn
from gateway.outbound.values import DeliveryReport, Envelope, Outcome, QueuedRecipient, RecipientResult
from routing.trust import dn_matches
from smtp.params import XtextError, xtext_encode

log = logging.getLogger("gateway.outbound.client")
_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


class NoTls(Exception):
    """The peer does not offer STARTTLS: we refuse to send in clear."""


class WrongOperator(Exception):
    """The peer's certificate is valid but not the trust entry's operator DN (SPEC §6)."""


def client_tls_context(
    *, ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None, min_version: str = "1.2"
) -> ssl.SSLContext:
    """Verifying client context: peer checked against ``ca_file`` and its host name; our cert offered."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return ctx


def enhanced_status(code: int, text: str) -> str:
    """The RFC 3463 status at the start of the reply text, else one derived from the code."""
    found = _ENHANCED_RE.match(text.strip())
    if found and found.group(1) == str(code)[0]:
        return ".".join(found.groups())
    return f"{code // 100}.0.0" if code >= 200 else "4.0.0"


def _tls_problem(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS with {host}:{port} failed: peer certificate not trusted: {WORDS[reason_for([exc.verify_code])]}"
    return f"TLS with {host}:{port} failed ({type(exc).__name__})"


def _outcome(code: int) -> Outcome:
    return "delivered" if 200 <= code < 300 else "permanent" if 500 <= code < 600 else "temporary"


def _result(rcpt: QueuedRecipient, code: int, text: str, mta: str | None) -> RecipientResult:
    line = " ".join(text.split())
    return RecipientResult(rcpt, _outcome(code), code, enhanced_status(code, line), f"smtp; {code} {line}", mta)


def local_failure(
    recipients: Sequence[QueuedRecipient], *, permanent: bool, status: str, text: str, mta: str | None = None
) -> DeliveryReport:
    """The same non-SMTP outcome (DNS, connection, TLS, policy) for every recipient."""
    outcome: Outcome = "permanent" if permanent else "temporary"
    results = tuple(RecipientResult(r, outcome, 0, status, f"X-Gateway; {text}", mta) for r in recipients)
    return DeliveryReport(results, mta)


def needs_smtputf8(envelope: Envelope, message: bytes) -> bool:
    """A UTF-8 address in the envelope, or 8-bit bytes in the header section (RFC 6532 §3); an
    8-bit body alone is 8BITMIME's (RFC 6152), not SMTPUTF8's."""
    if not (envelope.mail_from or "").isascii() or not all(r.address.isascii() for r in envelope.recipients):
        return True
    end = message.find(b"\r\n\r\n")
    return not message[: end if end >= 0 else len(message)].isascii()


def _mail_options(smtp: aiosmtplib.SMTP, envelope: Envelope, size: int) -> list[str]:
    options: list[str] = []
    if smtp.supports_extension("size"):  # RFC 1870 §6
        options.append(f"SIZE={size}")
    if smtp.supports_extension("dsn"):
        if envelope.ret:  # RFC 3461 §4.3
            options.append(f"RET={envelope.ret}")
        if envelope.envid:  # RFC 3461 §4.4
            options.append(f"ENVID={xtext_encode(envelope.envid)}")
    return options


def _rcpt_options(smtp: aiosmtplib.SMTP, rcpt: QueuedRecipient) -> list[str]:
    if not smtp.supports_extension("dsn"):
        return []
    options: list[str] = []
    if rcpt.notify:  # RFC 3461 §4.1
        options.append("NOTIFY=" + ",".join(rcpt.notify))
    if rcpt.orcpt:  # RFC 3461 §4.2: addr-type ";" xtext
        kind, _, addr = rcpt.orcpt.partition(";")
        try:
            options.append(f"ORCPT={kind};{xtext_encode(addr)}")
        except XtextError:
            pass  # non-ASCII original recipient: dropped rather than mangled
    return options


async def _session(
    smtp: aiosmtplib.SMTP, host: str, envelope: Envelope, message: bytes, tls: ssl.SSLContext,
    operator_dn: str | None = None,
) -> DeliveryReport:
    """One SMTP transaction on a connected client: EHLO, STARTTLS, EHLO, MAIL, RCPT..., DATA."""
    await smtp.ehlo()
    if not smtp.supports_extension("starttls"):
        raise NoTls(host)
    await smtp.starttls(server_hostname=host, tls_context=tls)  # RFC 3207 §4
    ssl_object = smtp.get_transport_info("ssl_object")
    if ssl_object is None:
        raise NoTls(host)
    if operator_dn is not None and not dn_matches(operator_dn, peer_dn(ssl_object)):
        raise WrongOperator(host)  # the certificate must also be the trusted operator's
    await smtp.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
    mta = f"dns; {host}"
    peer_dsn = smtp.supports_extension("dsn")
    if smtp.supports_extension("size"):
        limit = smtp.esmtp_extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < len(message):  # RFC 1870 §6.1
            text = "5.3.4 message larger than the receiving server accepts"
            return DeliveryReport(tuple(_result(r, 552, text, mta) for r in envelope.recipients), mta)
    options = _mail_options(smtp, envelope, len(message))
    encoding = "ascii"
    if needs_smtputf8(envelope, message):
        if not smtp.supports_extension("smtputf8"):
            return local_failure(envelope.recipients, permanent=True, status="5.6.7", mta=mta,
                                 text=f"{host} does not offer SMTPUTF8, which this message needs (RFC 6531)")
        options.append("SMTPUTF8")
        encoding = "utf-8"
    try:
        await smtp.mail(envelope.mail_from or "", options=options, encoding=encoding)
    except aiosmtplib.SMTPResponseException as exc:
        return DeliveryReport(tuple(_result(r, exc.code, exc.message, mta) for r in envelope.recipients), mta)
    results: list[RecipientResult] = []
    accepted: list[QueuedRecipient] = []
    for rcpt in envelope.recipients:
        try:
            reply = await smtp.rcpt(rcpt.address, options=_rcpt_options(smtp, rcpt), encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            results.append(_result(rcpt, exc.code, exc.message, mta))
            continue
        accepted.append(rcpt)
        log.debug("recipient accepted", extra={"code": reply.code})
    if not accepted:
        await smtp.rset()
        return DeliveryReport(tuple(results), mta)
    try:
        reply = await smtp.data(message)
        results += [_result(r, reply.code, reply.message, mta) for r in accepted]
    except aiosmtplib.SMTPResponseException as exc:
        results += [_result(r, exc.code, exc.message, mta) for r in accepted]
    notes = () if peer_dsn else ("peer-without-dsn",)
    return DeliveryReport(tuple(results), mta, notes)


async def deliver(
    destinations: Sequence[tuple[str, int]],
    envelope: Envelope,
    message: bytes,
    *,
    tls: ssl.SSLContext,
    helo: str,
    connect_timeout: float,
    command_timeout: float,
    operator_dn: str | None = None,
) -> DeliveryReport:
    """Try each destination in order until one answers over TLS (and, when the trust entry names
    one, with the operator's certificate DN); report per recipient."""
    problem = "no destination"
    for host, port in destinations:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=helo, timeout=command_timeout,
                               start_tls=False, tls_context=tls)
        try:
            await smtp.connect(timeout=connect_timeout)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            problem = f"cannot connect to {host}:{port} ({type(exc).__name__})"
            log.info("outbound connection failed", extra={"host": host, "port": port, "error": type(exc).__name__})
            continue
        try:
            report = await _session(smtp, host, envelope, message, tls, operator_dn)
        except WrongOperator:
            problem = f"{host}:{port} presented a certificate that is not the trusted operator's"
            log.warning("outbound peer certificate DN mismatch", extra={"host": host, "port": port})
            continue
        except NoTls:
            problem = f"{host}:{port} does not offer STARTTLS; not sent in clear"
            log.warning("outbound peer without STARTTLS", extra={"host": host, "port": port})
            continue
        except (ssl.SSLError, ssl.CertificateError) as exc:
            problem = _tls_problem(host, port, exc)
            log.warning("outbound TLS failed", extra={"host": host, "port": port, "error": type(exc).__name__})
            continue
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
                return local_failure(envelope.recipients, permanent=True, status=enhanced_status(exc.code, exc.message),
                                     text=f"{host} refused the session: {exc.code}", mta=f"dns; {host}")
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLError):
                problem = _tls_problem(host, port, cause)
            else:
                problem = f"session with {host}:{port} failed ({type(exc).__name__})"
            log.info("outbound session failed", extra={"host": host, "port": port, "error": type(exc).__name__})
            continue
        finally:
            if smtp.is_connected:
                try:
                    await asyncio.wait_for(smtp.quit(), timeout=5)
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    smtp.close()
        return report
    # RFC 3463 §3.5: X.4.1 no answer from host (temporary: retried with the backoff).
    return local_failure(envelope.recipients, permanent=False, status="4.4.1", text=problem)
