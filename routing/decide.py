"""Routing decisions: who may write to whom (SPEC §4), as pure functions over facts.

Every function returns a :class:`Verdict` built from the catalogue in
:mod:`routing.reasons` (DESIGN rules 4 and 6); SMTP handlers only translate it into a
reply line.  Decisions are taken per SMTP phase:

* :func:`decide_mail_from` at MAIL FROM (RFC 5321 §4.1.1.2);
* :func:`decide_rcpt` at each RCPT TO (RFC 5321 §4.1.1.3) — it re-checks the sender, so
  it is never more permissive than the MAIL phase;
* :func:`decide_after_data` after the final ``.`` of DATA, on the header facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from routing import reasons as R
from routing.address import Address, InvalidAddress, normalise_domain, parse_address
from routing.facts import ConversationFacts, HeaderFacts, RecipientFacts, Sender
from routing.ins import InvalidINS
from routing.reasons import Outcome
from routing.trust import TrustEntry, TrustList, dn_matches


@dataclass(frozen=True)
class Verdict:
    """The outcome of one decision: accept or not, why, and the SMTP reply to give."""

    accept: bool
    reason: str
    code: int
    enhanced: str
    text: str

    def line(self) -> str:
        """The reply line without CRLF, e.g. ``550 5.7.1 recipient domain is not in the trust space``."""
        return f"{self.code} {self.enhanced} {self.text}"


def verdict(outcome: Outcome, *, address: Address | None = None, detail: str = "") -> Verdict:
    """Build a verdict from a catalogue entry, filling its ``{address}``/``{detail}`` slots."""
    text = outcome.text
    if "{" in text:
        text = text.format(address="" if address is None else str(address), detail=detail)
    return Verdict(outcome.accept, outcome.reason, outcome.code, outcome.enhanced, text)


def _same(a: Address | None, b: Address | None) -> bool:
    return a is not None and b is not None and a.key == b.key


# --- MAIL FROM -------------------------------------------------------------------------------


def decide_mail_from(sender: Sender, trust: TrustList) -> Verdict:
    """May this sender start a transaction on this channel? (SPEC §4 last rows, §6)."""
    if sender.channel == "internal":
        return verdict(R.MAIL_OK if sender.kind == "gateway" else R.MAIL_WRONG_CHANNEL)
    if sender.channel == "web":
        ok = sender.kind == "patient" and sender.address is not None
        return verdict(R.MAIL_OK if ok else R.MAIL_WRONG_CHANNEL)
    if sender.channel == "submission":
        return _mail_from_submission(sender)
    return _mail_from_mx(sender, trust)


def _mail_from_submission(sender: Sender) -> Verdict:
    # RFC 4954 §6: mail submission requires authentication; RFC 6409 §6.1 lets the
    # submission server check that the sender is one the account may use.
    if sender.account is None:
        return verdict(R.MAIL_AUTH_REQUIRED)
    if not sender.account_active:  # suspended or removed after AUTH: 421, the session ends
        return verdict(R.MAIL_ACCOUNT_DISABLED)
    if not _same(sender.address, sender.account):
        return verdict(R.MAIL_NOT_YOUR_ADDRESS)
    if sender.kind != "hosted_pro":
        return verdict(R.MAIL_WRONG_CHANNEL)
    return verdict(R.MAIL_OK)


_CERTIFICATE_PROBLEMS = {"untrusted_issuer": R.MAIL_CERTIFICATE_UNTRUSTED, "expired": R.MAIL_CERTIFICATE_EXPIRED,
                         "not_yet_valid": R.MAIL_CERTIFICATE_NOT_YET_VALID}


def _mail_from_mx(sender: Sender, trust: TrustList) -> Verdict:
    # A certificate that does not verify ended the TLS handshake before issue 17: nothing is
    # accepted on such a session, whoever the sender claims to be; the reply says why.
    if sender.tls_peer_problem is not None:
        return verdict(_CERTIFICATE_PROBLEMS.get(sender.tls_peer_problem, R.MAIL_CERTIFICATE_INVALID))
    # Our own domains never arrive from outside: hosted pros submit, patients use the web.
    if sender.kind in ("hosted_pro", "patient", "gateway"):
        return verdict(R.MAIL_LOCAL_DOMAIN_VIA_MX)
    if sender.address is None:
        # RFC 5321 §4.5.5 null reverse-path (DSNs): no domain to look up, so the peer
        # must identify itself as a trusted operator with its client certificate.
        if not sender.tls:
            return verdict(R.MAIL_TLS_REQUIRED)
        if not trust.by_operator_dn(sender.tls_peer_dn):
            return verdict(R.MAIL_UNTRUSTED_SENDER)
        return verdict(R.MAIL_OK)
    # The trust list passed in is authoritative over the gateway's classification.
    entry = trust.entry(sender.address.domain)
    if entry is None:
        return verdict(R.MAIL_UNTRUSTED_SENDER)
    if not entry.active:
        return verdict(R.MAIL_DOMAIN_SUSPENDED)
    if entry.tls_required and not sender.tls:
        return verdict(R.MAIL_TLS_REQUIRED)  # RFC 3207 §4
    if entry.operator_dn is not None and not dn_matches(entry.operator_dn, sender.tls_peer_dn):
        return verdict(R.MAIL_CERTIFICATE_MISMATCH)
    return verdict(R.MAIL_OK)


# --- RCPT TO -------------------------------------------------------------------------------


def decide_rcpt(
    sender: Sender, recipient: RecipientFacts, conversation: ConversationFacts, trust: TrustList
) -> Verdict:
    """May this sender write to this recipient? Exactly the SPEC §4 table."""
    mail = decide_mail_from(sender, trust)
    if not mail.accept:
        return mail
    r = recipient
    # The trust-space boundary comes first: no relay, ever.
    if r.kind == "untrusted_domain":
        if sender.kind == "gateway" and sender.channel == "internal" and r.notification_target:
            return verdict(R.RCPT_OK_NOTIFICATION)
        return verdict(R.RCPT_UNTRUSTED_DOMAIN)
    if r.kind == "trusted_pro":
        if not trust.is_trusted(r.address.domain):
            return verdict(R.RCPT_UNTRUSTED_DOMAIN)
        if sender.channel == "mx":
            return verdict(R.RCPT_RELAY_DENIED)  # RFC 5321 §3.6.2: no open relay
    if r.kind == "unknown_local":
        return verdict(R.RCPT_NO_SUCH_USER)
    if r.kind == "patient":
        if sender.kind == "patient":
            # Checked before the mailbox so a patient learns nothing about other mailboxes.
            return verdict(R.RCPT_PATIENT_TO_PATIENT)
        return _patient_mailbox(r) or verdict(R.RCPT_OK)
    if r.kind == "hosted_pro" and not r.account_active:
        return verdict(R.RCPT_ACCOUNT_DISABLED)
    if sender.kind == "patient":
        return _patient_to_pro(sender, r, conversation)
    return verdict(R.RCPT_OK)  # pro -> pro, gateway -> pro (bounces, MDNs)


_STATE_REFUSALS: dict[str | None, Outcome] = {
    None: R.RCPT_NO_SUCH_PATIENT,
    "provisioned": R.RCPT_MAILBOX_NOT_OPEN,
    "opposed": R.RCPT_MAILBOX_OPPOSED,
    "closed": R.RCPT_MAILBOX_CLOSED,
    "purged": R.RCPT_MAILBOX_PURGED,
}


def _patient_mailbox(r: RecipientFacts) -> Verdict | None:
    """SPEC §3/§5: invalid INS, unknown, not open, opposed, closed: permanent refusals."""
    if r.invalid_ins is not None:
        return verdict(R.RCPT_INVALID_INS, address=r.address, detail=str(InvalidINS(r.invalid_ins)))
    if r.mailbox_state == "open":
        return None
    return verdict(_STATE_REFUSALS[r.mailbox_state])


def _patient_to_pro(sender: Sender, r: RecipientFacts, c: ConversationFacts) -> Verdict:
    """SPEC §4: a patient only replies inside a conversation the professional opened."""
    if r.accepts_patient_initiated:
        return verdict(R.RCPT_OK)
    if not c.exists:
        return verdict(R.RCPT_PATIENT_NOT_IN_CONVERSATION)
    if c.patient is not None and not _same(c.patient, sender.address):
        return verdict(R.RCPT_PATIENT_NOT_IN_CONVERSATION)
    if not (_same(r.address, c.opened_by) or _same(r.address, c.reply_to)):
        return verdict(R.RCPT_PATIENT_NOT_IN_CONVERSATION)
    if c.ended:
        return verdict(R.RCPT_CONVERSATION_ENDED)
    return verdict(R.RCPT_OK)


# --- after DATA -------------------------------------------------------------------------------


def _domain(value: str) -> str | None:
    try:
        return normalise_domain(value)
    except InvalidAddress:
        return None


def aligned(author_domain: str, signing_domain: str) -> bool:
    """The signature's d= is the From: domain or a parent of it (whoever owns the parent
    zone controls the child), cf. RFC 7489 §3.1.1 relaxed alignment without the PSL."""
    d = _domain(signing_domain)
    return d is not None and (author_domain == d or author_domain.endswith("." + d))


def author_entry(sender: Sender, author: Address, trust: TrustList) -> TrustEntry | None:
    """The trust entry that speaks for the From: domain.

    Its own entry; for the null reverse-path (RFC 5321 §4.5.5: DSNs, MDNs) also the nearest
    parent entry bound to the presented certificate, since MTAs write their notices from
    their host name (``MAILER-DAEMON@mx.hopital.example``)."""
    entry = trust.lookup(author.domain)
    if entry is None and sender.address is None and sender.tls:
        entry = trust.operator_entry(author.domain, sender.tls_peer_dn)
    return entry


def _dkim_verdict(sender: Sender, author: Address, entry: TrustEntry) -> tuple[bool, Verdict | None]:
    """(a passing author-aligned signature exists, a refusal for a failing one or None).

    SPEC §4: a DKIM signature of the author's domain that is present must verify; one of
    several may fail when another passes (RFC 6376 §4.2, e.g. RSA and Ed25519 side by side,
    RFC 8463 §5). Signatures of other domains say nothing about the author and are not used.
    """
    mine = [c for c in sender.dkim if c.result != "policy" and aligned(author.domain, c.domain)]
    if any(c.result == "pass" for c in mine):
        return True, None
    if not mine or not entry.dkim_checked:
        return False, None
    if any(c.result == "temperror" for c in mine):
        return False, verdict(R.DATA_DKIM_TEMPERROR)
    return False, verdict(R.DATA_DKIM_FAILED)


def decide_after_data(sender: Sender, headers: HeaderFacts, trust: TrustList) -> Verdict:
    """SPEC §4 "sender spoofing": the From: header must match who really sends.

    Over the MX, the From: domain's trust entry decides (issue 17):

    * a certificate DN bound to the entry: the connection's verified client certificate
      must be that one (MSSanté operator authentication), and it suffices, with or without
      DKIM, unless the entry says ``dkim_required``;
    * no certificate DN: a passing author-aligned DKIM signature is required (RFC 7372);
      with DKIM policy ``none``, only a private link (TLS not required) aligned on the
      envelope sender;
    * in every case a signature of the author's domain that is present must verify.
    """
    mail = decide_mail_from(sender, trust)
    if not mail.accept:
        return mail
    if sender.channel in ("web", "internal"):
        return verdict(R.DATA_OK)  # the gateway writes these headers itself
    if len(headers.from_addresses) != 1:
        return verdict(R.DATA_FROM_INVALID)  # RFC 5322 §3.6: exactly one author here
    author = headers.from_addresses[0]
    if sender.channel == "submission":
        ok = _same(author, sender.account)
        return verdict(R.DATA_OK if ok else R.DATA_FROM_NOT_YOUR_ADDRESS)
    entry = author_entry(sender, author, trust)
    if entry is None:
        return verdict(R.DATA_FROM_UNTRUSTED)
    dkim_ok, dkim_refusal = _dkim_verdict(sender, author, entry)
    if dkim_refusal is not None:
        return dkim_refusal
    if entry.operator_dn is not None:
        if not entry.certificate_matches(sender.tls, sender.tls_peer_dn):
            return verdict(R.DATA_FROM_NOT_ALIGNED)
        if entry.dkim_required and not dkim_ok:
            return verdict(R.DATA_NO_DKIM)
        return verdict(R.DATA_OK)
    if dkim_ok:
        return verdict(R.DATA_OK)
    if not entry.dkim_checked:
        # A private link (TLS not required, no operator DN: the network itself is the
        # authentication, e.g. a dedicated line or a test rig): the envelope sender's
        # domain, already checked against the trust list at MAIL, must be the author's.
        private_ok = (not entry.tls_required and sender.address is not None
                      and sender.address.domain == author.domain)
        return verdict(R.DATA_OK if private_ok else R.DATA_FROM_NOT_ALIGNED)
    # "dns" / "pinned" without a certificate: an author-aligned passing signature (RFC 7372 §3.1).
    return verdict(R.DATA_DKIM_NOT_ALIGNED if sender.dkim else R.DATA_NO_DKIM)


# --- conversations -------------------------------------------------------------------------------


def conversation_effect(subject: str | None, x_mss_mes: str | None) -> Literal["open", "end"]:
    """SPEC §4: a subject of exactly ``[FIN]`` or ``X-MSS-MES: FIN`` ends the conversation."""
    if subject is not None and subject.strip() == "[FIN]":
        return "end"
    if x_mss_mes is not None and x_mss_mes.strip().casefold() == "fin":
        return "end"
    return "open"


def owns_conversation(author: str, opened_by: str, reply_to: str | None) -> bool:
    """SPEC §4: only the professional who opened a conversation, or the address in its
    ``Reply-To``, may write into it by threading headers or end it. Any other author's
    message that points at it starts a conversation of its own (issue 15: one leaked
    Message-ID must not let someone end another professional's conversation)."""
    who = _address_key(author)
    return who is not None and who in {_address_key(opened_by), _address_key(reply_to)}


def _address_key(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return parse_address(text).key
    except InvalidAddress:
        return None
