"""The catalogue of routing outcomes: reason code -> SMTP reply (SPEC §4).

One place for every routing decision the gateway can take (DESIGN rule 6): a stable
reason code (for logs, metrics and tests), the RFC 5321 reply code, the RFC 3463
enhanced status code, and plain words safe to show any sender (no internals).

Texts may carry the placeholders ``{address}`` (the recipient as the sender wrote it,
already parsed, so it cannot contain CR/LF) and ``{detail}`` (a fixed phrase chosen by
the decision code, e.g. the :class:`routing.ins.InvalidINS` text); nothing else.

Enhanced codes used (RFC 3463 §3 unless noted):

* X.1.0 other address status, X.1.5 destination address valid, X.1.1 bad destination
  mailbox address, X.2.1 mailbox disabled, not accepting messages;
* X.7.0 other security status (RFC 3207 §4 uses 530 5.7.0 for "must issue STARTTLS
  first" and RFC 4954 §6 for "authentication required"), X.7.1 delivery not authorized;
* RFC 7372 §3.1: X.7.20 no passing DKIM signature found, X.7.22 no valid author-matched
  DKIM signature found; X.7.5 cryptographic failure (a DKIM key that cannot be fetched now);
* X.6.0 other or undefined media error (a message without a usable From: header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Outcome:
    """One catalogue entry; ``text`` may contain ``{address}`` / ``{detail}``."""

    reason: str
    code: int
    enhanced: str
    text: str

    @property
    def accept(self) -> bool:
        # RFC 5321 §4.2.1: 2yz is a positive completion, 4yz/5yz are refusals.
        return 200 <= self.code < 300


# --- acceptances -----------------------------------------------------------------------
MAIL_OK = Outcome("mail.ok", 250, "2.1.0", "sender OK")
RCPT_OK = Outcome("rcpt.ok", 250, "2.1.5", "recipient OK")
RCPT_OK_NOTIFICATION = Outcome("rcpt.ok_notification", 250, "2.1.5", "recipient OK")
DATA_OK = Outcome("data.ok", 250, "2.6.0", "message content OK")

# --- MAIL FROM (sender) refusals ---------------------------------------------------------
MAIL_UNTRUSTED_SENDER = Outcome("mail.untrusted_sender", 550, "5.7.1", "sender domain is not in the trust space")
MAIL_DOMAIN_SUSPENDED = Outcome(
    "mail.domain_suspended", 550, "5.7.1", "sender domain is suspended from the trust space"
)
# RFC 3207 §4: "530 5.7.0 Must issue a STARTTLS command first".
MAIL_TLS_REQUIRED = Outcome("mail.tls_required", 530, "5.7.0", "must issue STARTTLS first")
MAIL_CERTIFICATE_MISMATCH = Outcome(
    "mail.certificate_mismatch",
    550,
    "5.7.1",
    "client certificate does not match the trusted operator of the sender domain",
)
# A client certificate was presented but does not verify (issue 17 item 5): the handshake is
# completed so that the operator's MTA reads why, and bounces instead of retrying for days.
MAIL_CERTIFICATE_UNTRUSTED = Outcome(
    "mail.certificate_untrusted", 550, "5.7.1", "client certificate not trusted: untrusted issuer"
)
MAIL_CERTIFICATE_EXPIRED = Outcome(
    "mail.certificate_expired", 550, "5.7.1", "client certificate not trusted: certificate expired"
)
MAIL_CERTIFICATE_NOT_YET_VALID = Outcome(
    "mail.certificate_not_yet_valid", 550, "5.7.1", "client certificate not trusted: certificate not yet valid"
)
MAIL_CERTIFICATE_INVALID = Outcome(
    "mail.certificate_invalid", 550, "5.7.1", "client certificate not trusted: certificate does not verify"
)
# RFC 4954 §6: "530 5.7.0 Authentication required".
MAIL_AUTH_REQUIRED = Outcome("mail.auth_required", 530, "5.7.0", "authentication required")
# The account authenticated on this session was suspended or removed since (Postfix and Dovecot
# re-check on each use): RFC 5321 §3.8 421, the server closes the channel; RFC 3463 X.7.0.
MAIL_ACCOUNT_DISABLED = Outcome(
    "mail.account_disabled", 421, "4.7.0", "account disabled by the administrator, closing connection")
MAIL_NOT_YOUR_ADDRESS = Outcome("mail.not_your_address", 550, "5.7.1", "sender address does not belong to your account")
MAIL_LOCAL_DOMAIN_VIA_MX = Outcome(
    "mail.local_domain_via_mx",
    550,
    "5.7.1",
    "sender domain is hosted here: use authenticated submission",
)
MAIL_WRONG_CHANNEL = Outcome("mail.wrong_channel", 550, "5.7.1", "this sender may not send mail through this service")

# --- RCPT TO (recipient) refusals --------------------------------------------------------
RCPT_UNTRUSTED_DOMAIN = Outcome("rcpt.untrusted_domain", 550, "5.7.1", "recipient domain is not in the trust space")
RCPT_RELAY_DENIED = Outcome(
    "rcpt.relay_denied", 550, "5.7.1", "relaying denied: this server only accepts mail for its own users"
)
RCPT_INVALID_INS = Outcome("rcpt.invalid_ins", 550, "5.1.1", "<{address}>: {detail}")
RCPT_NO_SUCH_PATIENT = Outcome("rcpt.no_such_patient", 550, "5.1.1", "no such patient mailbox")
RCPT_MAILBOX_NOT_OPEN = Outcome("rcpt.mailbox_not_open", 550, "5.2.1", "mailbox not open")
RCPT_MAILBOX_OPPOSED = Outcome(
    "rcpt.mailbox_opposed", 550, "5.2.1", "the patient has opposed the creation of this mailbox"
)
RCPT_MAILBOX_CLOSED = Outcome("rcpt.mailbox_closed", 550, "5.2.1", "the patient has closed this mailbox")
RCPT_MAILBOX_PURGED = Outcome("rcpt.mailbox_purged", 550, "5.1.1", "this patient mailbox no longer exists")
RCPT_NO_SUCH_USER = Outcome("rcpt.no_such_user", 550, "5.1.1", "no such user here")
RCPT_ACCOUNT_DISABLED = Outcome(
    "rcpt.account_disabled", 550, "5.2.1", "this mailbox is disabled and does not accept mail"
)
RCPT_PATIENT_TO_PATIENT = Outcome("rcpt.patient_to_patient", 550, "5.7.1", "patients cannot write to other patients")
RCPT_PATIENT_NOT_IN_CONVERSATION = Outcome(
    "rcpt.patient_not_in_conversation",
    550,
    "5.7.1",
    "patients can only reply to a professional who wrote to them first",
)
RCPT_CONVERSATION_ENDED = Outcome(
    "rcpt.conversation_ended", 550, "5.7.1", "the professional has ended this conversation"
)

# --- after DATA (header) refusals ----------------------------------------------------------
# Health documents (issue 21, healthdocs.decide): a patient mailbox never receives a document
# about another patient, nor one classified INVISIBLE_PATIENT (not to be seen before it is explained).
DATA_DOCUMENT_OTHER_PATIENT = Outcome(
    "data.document_other_patient", 550, "5.7.1", "a document in this message concerns another patient"
)
DATA_DOCUMENT_INVISIBLE_PATIENT = Outcome(
    "data.document_invisible_patient", 550, "5.7.1",
    "a document in this message may not be shown to the patient before it is explained to them",
)
DATA_FROM_INVALID = Outcome("data.from_invalid", 550, "5.6.0", "the message must have exactly one valid From: address")
DATA_FROM_NOT_YOUR_ADDRESS = Outcome(
    "data.from_not_your_address", 550, "5.7.1", "the From: address does not belong to your account"
)
DATA_FROM_UNTRUSTED = Outcome("data.from_untrusted", 550, "5.7.1", "the From: domain is not in the trust space")
DATA_FROM_NOT_ALIGNED = Outcome(
    "data.from_not_aligned",
    550,
    "5.7.1",
    "the From: domain is not authenticated by a DKIM signature or the operator certificate",
)
# RFC 7372 §3.1.
DATA_NO_DKIM = Outcome("data.no_dkim", 550, "5.7.20", "no passing DKIM signature found")
# SPEC §4: a signature of the author's domain that is present must verify (stricter than
# RFC 6376 §6.1, which lets a verifier ignore it): the message was altered, or forged.
DATA_DKIM_FAILED = Outcome(
    "data.dkim_failed", 550, "5.7.20", "the DKIM signature of the From: domain does not verify"
)
# RFC 6376 §6.1.2: the key could not be fetched now (DNS timeout): try again later.
DATA_DKIM_TEMPERROR = Outcome(
    "data.dkim_temperror", 451, "4.7.5", "the DKIM key of the From: domain cannot be fetched now; try again later"
)
DATA_DKIM_NOT_ALIGNED = Outcome(
    "data.dkim_not_aligned", 550, "5.7.22", "no valid DKIM signature matches the From: domain"
)

_ALL: tuple[Outcome, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Outcome))

#: Every routing outcome by reason code.
CATALOGUE: Mapping[str, Outcome] = MappingProxyType({o.reason: o for o in _ALL})

#: Count of module-level entries, so a duplicate reason code is detectable by tests.
ENTRY_COUNT = len(_ALL)
