"""Read receipts (SPEC §7, RFC 8098): opening a message that carries
``Disposition-Notification-To`` sends one MDN, which the patient cannot suppress.

The message is flagged ``$MDNSent`` (RFC 3503) in the same transaction that claims the
right to send, so two tabs opening it at once send one MDN; the MDN then goes through the
gateway's own mail path (routing decisions + the delivery pipeline and queue). If that
fails the flag is removed so the next opening tries again.
"""

from __future__ import annotations

import logging

from gateway.mailstore import inbox
from gateway.outbound.mdn import build_mdn, mdn_addresses
from gateway.store import audit
from gateway.web.patient import mailbox, mailview
from gateway.web.patient.state import Ctx, PatientWeb

log = logging.getLogger("gateway.web.receipts")


def send_once(web: PatientWeb, ctx: Ctx, message_id: int) -> bool:
    """Send the MDN for this message if one is asked for and not sent yet; ``True`` if sent."""
    with web.db.write() as s:
        row = inbox.owned(s, ctx.mailbox_id, message_id)
        if row is None or row.folder != "INBOX":
            return False
        headers = mailview.parse(inbox.open_row(s, web.keys, ctx.mailbox_id, row))
        recipients = mdn_addresses(headers)
        if not recipients or not inbox.add_flag(s, ctx.mailbox_id, row, mailbox.MDN_SENT):
            return False
        uid = row.uid
    settings = web.settings
    final = f"{ctx.ins}@{settings.domains.patient_domain}"
    raw = build_mdn(headers, reporting_ua=f"{settings.server.hostname}; messagerie-sante", final_recipient=final,
                    now=web.now())
    try:
        web.mail.internal.submit_sync(None, recipients, raw, kind="mdn")
    except Exception as exc:  # refused or not stored: let the next opening try again
        log.warning("read receipt not sent", extra={"reason": exc.__class__.__name__})
        with web.db.write() as s:
            again = inbox.owned(s, ctx.mailbox_id, message_id)
            if again is not None and again.uid == uid:
                inbox.remove_flag(s, ctx.mailbox_id, again, mailbox.MDN_SENT)
        return False
    with web.db.write() as s:
        audit.record(s, actor="system", action="patient.mdn_sent", subject_ref=f"patient:{ctx.patient_id}",
                     details={"message": message_id, "recipients": len(recipients)}, keys=web.keys,
                     patient_mailbox=ctx.mailbox_id)
    return True
