"""The content-free "new message" notification to a patient's personal address (SPEC §7).

It is the only mail leaving the trust space (SPEC §4), so it says nothing but that a message
arrived: no sender, no subject, no content, no identifier of the message. At most one per
patient per ``queue.notification_interval_minutes``; ``Patient.last_notified_at`` records it.
It is sent with a null reverse-path (RFC 3834 §3.3: no bounce loop) from a no-reply address.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import Session

from gateway.accounts.patients import personal_email
from gateway.outbound import queue
from gateway.outbound.dsn import encoded_header, render_to, utf8_text
from gateway.outbound.values import QueuedRecipient, domain_of
from gateway.store.keys import KeyService
from gateway.store.models import Patient, QueueEntry

NOTIFICATION_TEXT = (
    "Vous avez reçu un nouveau message dans votre messagerie de santé. "
    "Connectez-vous à votre espace pour le lire."
)
NOTIFICATION_SUBJECT = "Nouveau message dans votre messagerie de santé"


def no_reply_address(hostname: str) -> str:
    return f"no-reply@{hostname}"


def automatic_mail(body: str, subject: str, *, to: str, hostname: str, now: datetime,
                   message_id: str | None = None) -> bytes:
    """A French text message from the no-reply address to a patient's personal address, marked
    automatic (RFC 3834 §5: ``Auto-Submitted: auto-generated``, so no auto-reply answers it)."""
    msg = utf8_text(body)
    msg["MIME-Version"] = "1.0"
    msg["From"] = no_reply_address(hostname)
    msg["Subject"] = encoded_header(subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id or make_msgid(domain=hostname)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    return render_to(msg, to)


def build_notification(*, to: str, hostname: str, now: datetime, message_id: str | None = None) -> bytes:
    """The notification message; ``to`` is the patient's personal address."""
    body = (
        f"{NOTIFICATION_TEXT}\n\n"
        "Ce courriel est envoyé automatiquement, merci de ne pas y répondre. Vous pouvez "
        "désactiver ces avis dans les réglages de votre espace.\n"
    )
    return automatic_mail(body, NOTIFICATION_SUBJECT, to=to, hostname=hostname, now=now, message_id=message_id)


def notification_due(last_notified_at: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Rate limit: at most one notification per ``interval``."""
    return last_notified_at is None or now - last_notified_at >= interval


def should_notify(patient: Patient, now: datetime, interval: timedelta) -> bool:
    """The patient asked for notifications, has an open space, and was not notified recently."""
    return (
        patient.notifications_enabled
        and patient.state == "open"
        and patient.email_sealed is not None
        and notification_due(patient.last_notified_at, now, interval)
    )


def queue_notification(
    session: Session,
    keys: KeyService,
    patient: Patient,
    *,
    hostname: str,
    now: datetime,
    interval: timedelta,
    max_age: timedelta,
) -> QueueEntry | None:
    """In the delivery transaction: queue one notification if due, and record it on the patient.

    The patient row should be locked by the caller (PostgreSQL ``FOR UPDATE``) when several
    deliveries may run at once; SQLite write transactions are serialised already.
    """
    if not should_notify(patient, now, interval):
        return None
    address = personal_email(session, keys, patient)
    if not address or "@" not in address:
        return None
    patient.last_notified_at = now
    return queue.enqueue(
        session, keys, domain=domain_of(address), mail_from=None,
        recipients=[QueuedRecipient(address, ("NEVER",))],
        message=build_notification(to=address, hostname=hostname, now=now),
        kind="notification", now=now, max_age=max_age,
    )


CODE_SUBJECT = "Votre nouveau code d'activation - messagerie de santé"


def build_code_mail(*, to: str, code: str, valid_until: str, hostname: str, now: datetime,
                    message_id: str | None = None) -> bytes:
    """The mail carrying a new activation code (issue 14): the code and its end of validity only.

    Like the notification, nothing of the mailbox: no INS, no sender, no subject, no link (a
    mail that never holds a link cannot be imitated by a phishing link)."""
    body = (
        "Un nouveau code d'activation a été émis pour votre messagerie de santé.\n\n"
        f"Code d'activation : {code}\n"
        f"Valable jusqu'au {valid_until}, une seule fois.\n\n"
        "Sur le site de votre messagerie de santé, ouvrez la page « Activer ma messagerie », saisissez "
        "votre numéro INS et ce code : vous choisirez un nouveau mot de passe et configurerez une nouvelle "
        "application d'authentification. Vos messages sont conservés.\n\n"
        "Vous n'avez rien demandé ? Ignorez ce courriel : votre mot de passe actuel reste valable tant que "
        "ce code n'est pas utilisé.\n\n"
        "Ce courriel est envoyé automatiquement, merci de ne pas y répondre. Il ne contient aucun lien.\n"
    )
    return automatic_mail(body, CODE_SUBJECT, to=to, hostname=hostname, now=now, message_id=message_id)


def queue_code_mail(session: Session, keys: KeyService, patient: Patient, code: str, *, valid_until: str,
                    hostname: str, now: datetime, max_age: timedelta) -> QueueEntry | None:
    """In the caller's transaction: queue the code for the personal address (None: no address on file)."""
    address = personal_email(session, keys, patient)
    if not address or "@" not in address:
        return None
    patient.code_mailed_at = now
    return queue.enqueue(
        session, keys, domain=domain_of(address), mail_from=None,
        recipients=[QueuedRecipient(address, ("NEVER",))],
        message=build_code_mail(to=address, code=code, valid_until=valid_until, hostname=hostname, now=now),
        kind="notification", now=now, max_age=max_age,
    )
