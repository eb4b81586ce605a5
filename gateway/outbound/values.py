"""Values shared by the queue, the client, the DSN builder and the worker (pure).

The envelope of a queued message keeps what RFC 3461 (DSN) asks a relay to carry
forward: RET and ENVID from MAIL, NOTIFY and ORCPT from each RCPT.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

# RFC 3461 §4.1: NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY", "NEVER"})
RET_VALUES = frozenset({"HDRS", "FULL"})  # RFC 3461 §4.3
KINDS = frozenset({"message", "bounce", "dsn", "mdn", "notification"})

Outcome = Literal["delivered", "temporary", "permanent"]

_ADDRESS_RE = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")


@dataclass(frozen=True)
class QueuedRecipient:
    address: str
    notify: tuple[str, ...] = ()  # empty: not given (RFC 3461 §4.1 default = FAILURE)
    orcpt: str | None = None  # "rfc822;addr", decoded (RFC 3461 §4.2)

    def __post_init__(self) -> None:
        unknown = set(self.notify) - NOTIFY_VALUES
        if unknown:
            raise ValueError(f"unknown NOTIFY value(s) {sorted(unknown)}")
        if "NEVER" in self.notify and len(self.notify) > 1:
            raise ValueError("NOTIFY=NEVER cannot be combined with other values (RFC 3461 §4.1)")
        if self.orcpt is not None and ";" not in self.orcpt:
            raise ValueError("ORCPT must be addr-type;address (RFC 3461 §4.2)")

    def wants(self, what: Literal["SUCCESS", "FAILURE", "DELAY"]) -> bool:
        """Whether a DSN of this kind is asked for; without NOTIFY, failures only (RFC 3461 §4.1)."""
        if not self.notify:
            return what == "FAILURE"
        return what in self.notify


@dataclass(frozen=True)
class Envelope:
    mail_from: str | None  # None: the null reverse-path <>
    recipients: tuple[QueuedRecipient, ...]
    ret: str | None = None
    envid: str | None = None
    delay_notified: bool = False  # a "delayed" DSN was sent already

    def to_json(self) -> bytes:
        data = {
            "from": self.mail_from,
            "rcpt": [{"a": r.address, "n": list(r.notify), "o": r.orcpt} for r in self.recipients],
            "ret": self.ret,
            "envid": self.envid,
            "delayed": self.delay_notified,
        }
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        data: dict[str, Any] = json.loads(raw)
        recipients = tuple(QueuedRecipient(r["a"], tuple(r["n"]), r["o"]) for r in data["rcpt"])
        return cls(data["from"], recipients, data["ret"], data["envid"], bool(data.get("delayed")))

    def with_recipients(self, recipients: tuple[QueuedRecipient, ...]) -> Envelope:
        return replace(self, recipients=recipients)


@dataclass(frozen=True)
class RecipientResult:
    """The outcome of one recipient in one attempt, as RFC 3464 §2.3 wants to report it."""

    recipient: QueuedRecipient
    outcome: Outcome
    code: int  # SMTP reply code; 0 when no reply was received (connection, TLS, DNS)
    status: str  # RFC 3463 enhanced status code, e.g. "5.1.1"
    diagnostic: str  # "smtp; 550 5.1.1 ..." or a local explanation
    remote_mta: str | None = None

    @property
    def final(self) -> bool:
        return self.outcome != "temporary"


@dataclass(frozen=True)
class DeliveryReport:
    results: tuple[RecipientResult, ...]
    remote_mta: str | None = None
    notes: tuple[str, ...] = field(default=())

    def of(self, outcome: Outcome) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.results if r.outcome == outcome)


def redact(text: str, limit: int = 200) -> str:
    """A peer's reply made safe for logs and ``last_error``: no addresses, bounded length."""
    cleaned = _ADDRESS_RE.sub("<address>", " ".join(text.split()))
    return cleaned[:limit]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
