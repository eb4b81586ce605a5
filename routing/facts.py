"""Facts the routing decisions are taken on (SPEC §4), gathered by the gateway.

The composition root (``gateway``) classifies the SMTP session, looks up mailboxes,
accounts and conversations, and hands these plain values to :mod:`routing.decide`;
no I/O happens here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from routing.address import Address

SenderKind = Literal["hosted_pro", "trusted_pro", "patient", "untrusted", "gateway"]
# Where the message comes in: authenticated submission (587/465), server-to-server MX (25),
# the patient web inbox, or the gateway itself (notifications, bounces, MDNs).
Channel = Literal["submission", "mx", "web", "internal"]
RecipientKind = Literal["patient", "hosted_pro", "trusted_pro", "untrusted_domain", "unknown_local"]
MailboxState = Literal["provisioned", "open", "opposed", "closed", "purged"]
InsProblem = Literal["length", "format", "key"]
# RFC 8601 §2.7.1 result of one DKIM signature; "policy": present but not checked (the
# signature is not the author's domain's, or beyond the number of signatures checked).
DkimOutcome = Literal["pass", "fail", "temperror", "policy"]


@dataclass(frozen=True)
class DkimCheck:
    """One DKIM-Signature of the message (RFC 6376) and what its verification gave."""

    domain: str  # its d= tag
    result: DkimOutcome


@dataclass(frozen=True)
class Sender:
    """Who is sending, as the gateway established it.

    ``address`` is the envelope MAIL FROM; None is the null reverse-path ``<>``
    (RFC 5321 §4.5.5, used by delivery status notifications).
    ``kind`` is the gateway's classification of that address's domain: one of our
    hosted domains, a domain on the trust list, the patient domain, the gateway's own
    notification address, or anything else ("untrusted").
    """

    kind: SenderKind
    address: Address | None
    channel: Channel
    # submission: the authenticated account (RFC 4954), None when not authenticated
    account: Address | None = None
    # submission: whether that account is still active (an administrator may suspend or remove
    # it while the session it authenticated is open; the host reads it again at each MAIL FROM)
    account_active: bool = True
    # MX: whether STARTTLS is active, the verified client certificate subject (RFC 4514
    # string), and after DATA the DKIM signatures of the message (RFC 6376), topmost first.
    tls: bool = False
    tls_peer_dn: str | None = None
    # MX: the client presented a certificate that did not verify, and why: "untrusted_issuer",
    # "expired", "not_yet_valid", or any other word for "does not verify" (issue 17 item 5).
    tls_peer_problem: str | None = None
    dkim: tuple[DkimCheck, ...] = ()

    @property
    def dkim_domains(self) -> frozenset[str]:
        """The domains (d=) of the signatures that verified."""
        return frozenset(c.domain for c in self.dkim if c.result == "pass")


@dataclass(frozen=True)
class RecipientFacts:
    """One RCPT TO recipient and what the gateway knows about it.

    * ``patient``: an address on the patient domain; ``invalid_ins`` names what is wrong
      with its local part when it is not an INS, ``mailbox_state`` is None when there
      is no mailbox for that INS.
    * ``hosted_pro``: an existing account on a hosted domain (``account_active``).
    * ``trusted_pro``: an address on a trusted domain (the decision re-checks the list).
    * ``untrusted_domain``: any other domain, e.g. a patient's personal address.
    * ``unknown_local``: a hosted-domain address with no account.
    """

    address: Address
    kind: RecipientKind
    invalid_ins: InsProblem | None = None
    mailbox_state: MailboxState | None = None
    accepts_patient_initiated: bool = False
    account_active: bool = True
    # The gateway's own content-free notification to a patient's personal address
    # (SPEC §4, §7): the only mail that may leave the trust space.
    notification_target: bool = False


@dataclass(frozen=True)
class ConversationFacts:
    """The conversation a patient's message replies to (found through In-Reply-To/References).

    ``opened_by`` is the professional who opened it, ``reply_to`` the address of that
    first message's Reply-To header, ``patient`` the patient it was opened with.
    """

    exists: bool = False
    opened_by: Address | None = None
    reply_to: Address | None = None
    patient: Address | None = None
    ended: bool = False


NO_CONVERSATION = ConversationFacts()


@dataclass(frozen=True)
class HeaderFacts:
    """Header facts known after DATA: the mailboxes of the From: header (RFC 5322 §3.6.2).

    Empty when the header is missing or cannot be parsed.
    """

    from_addresses: tuple[Address, ...] = ()
