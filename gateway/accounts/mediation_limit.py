"""A per-mediator rate of lookups by INS and of new activation codes, shared by every node.

Why: a mediator (SPEC §2, France Services desk) may look a patient space up by INS and learn
whether it exists and its state. Unlimited, one mediator account, or one stolen session or
token, could sweep INS numbers at machine speed and learn who has a space and in what state.
A desk helps a few people an hour; it never needs more than a few dozen lookups an hour.

Defaults (``[admin]`` of the config file, :class:`gateway.settings.AdminSettings`):

- lookups by INS: **30 an hour**, **burst of 10**. A desk session is 10 to 20 minutes per
  person, with one to three lookups (a typo, a check after activation): 30 an hour covers ten
  people an hour, more than a desk sees, and a morning queue or a group workshop may use up to
  10 at once. A sweep then gets 10 answers at once and one every two minutes after: 720 a day
  instead of thousands a second, and the audit trail shows it from the first refusal.
- new activation codes: **10 an hour**, **burst of 5**. A code is issued after a lookup, at
  most once or twice per person; each issue also counts as a lookup by INS (its answer, 201,
  404 or 409, tells the space's existence and state), so the flow "look up, issue" costs two
  lookups and one code.

The rate is a token bucket written as GCRA (the Generic Cell Rate Algorithm, ITU-T I.371):
one time per counter, the *theoretical arrival time* ``tat``; a request is admitted when
``tat + interval - now <= burst * interval`` (``interval`` = 3600 / per_hour), which then
moves ``tat`` on by one interval. A full bucket (``tat <= now``) and no row are the same state,
so a counter can be forgotten whenever its ``tat`` has passed. A refused request consumes
nothing: the bucket refills at the same rate however hard it is hammered.

Why not :class:`gateway.accounts.throttle.LoginThrottle` with a scope of its own: it counts
*judged failures* (reserved before a secret is checked, then failed or given back) and answers
with delays and lockouts of an account from a network; a lookup is not a failure, has no verdict
to wait for, and every lookup counts, so its pending/lease/lockout semantics do not fit. This
is a small counter on the same shared table, ``login_counters`` (one row per mediator and
limit), with the same habits: one write transaction, rows created if missing and locked
``FOR UPDATE``, one key per statement with an equality on ``key`` (one Citus shard), a
transaction's keys in sorted order. Its columns here: ``next_allowed`` holds ``tat``,
``failures`` the refusals since the last admitted request (the first one is the *crossing*),
``window_start`` the last change. The login throttle's sweep forgets such a row only once
``tat`` has passed (``next_allowed <= now``): a full bucket, the same as no row.

Keys: ``mediation/lookup:<mediator id>`` and ``mediation/code:<mediator id>``: the account's
row id (``mediators`` is a reference table), neither a name typed by anyone nor anything about
a patient, and stable across index key rotations. The admission runs in its own committed
transaction *before* the lookup: a lookup that fails (404, the INS has no space) is counted
all the same.

Administrators are not limited here: they hold the whole patients API and pages (``/patients``)
where a limit on this page would protect nothing; their sessions are the admin console's
concern. Each refusal is audited (``mediator.rate_limited``) and the first refusal after an
admitted request also as ``mediator.rate_limit_reached``, with the mediator as subject and
never the INS (nothing was looked up: no patient is named either).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from gateway.accounts.throttle import locked_counter
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.models import Mediator

Limit = Literal["lookup", "code"]
Action = Literal["lookup", "code"]
SCOPE = "mediation"
#: Which limits an action uses up, in key order: a new code is also a lookup by INS.
USES: dict[Action, tuple[Limit, ...]] = {"lookup": ("lookup",), "code": ("code", "lookup")}


@dataclass(frozen=True)
class Rate:
    per_hour: int
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate."""
        return 3600.0 / self.per_hour


@dataclass(frozen=True)
class MediationLimits:
    lookup: Rate = Rate(30, 10)
    code: Rate = Rate(10, 5)

    def rate(self, limit: Limit) -> Rate:
        return self.lookup if limit == "lookup" else self.code


@dataclass(frozen=True)
class Admission:
    """``allowed`` false: nothing may be looked up; ``limit`` was reached, ``retry_after``
    seconds (whole, at least 1) until one more request is admitted."""

    allowed: bool
    limit: Limit | None = None
    retry_after: int = 0
    rate: Rate | None = None


def gcra(tat: float | None, now: float, rate: Rate) -> tuple[bool, float, float]:
    """(admitted, the new ``tat``, seconds until admitted when not) for one request at ``now``."""
    start = max(tat or now, now)
    new_tat = start + rate.interval
    wait = new_tat - rate.burst * rate.interval - now
    if wait > 0:
        return False, start, wait
    return True, new_tat, 0.0


def counter_key(limit: Limit, mediator_id: int) -> str:
    return f"{SCOPE}/{limit}:{mediator_id}"


class MediationLimiter:
    """The lookups and new codes of each mediator, counted on every node alike (``clock``: seconds
    since the epoch, a parameter for tests)."""

    def __init__(self, db: Database, limits: MediationLimits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.limits = limits or MediationLimits()
        self.clock = clock

    def admit(self, role: str, name: str, action: Action, *, via: str, peer: str | None) -> Admission:
        """Count one ``action`` of the console account ``name`` (``role``: admin | mediator), or
        refuse it (nothing counted; audited). Administrators are always admitted, uncounted."""
        if role != "mediator":
            return Admission(True)
        now = self.clock()
        with self.db.write() as session:
            mediator_id = session.execute(select(Mediator.id).where(Mediator.name == name)).scalar_one_or_none()
            if mediator_id is None:  # removed since its session was checked: nothing to count, nothing to look up
                return Admission(False, USES[action][0], 1, self.limits.rate(USES[action][0]))
            limits = USES[action]
            rows = {limit: locked_counter(session, self.db, counter_key(limit, mediator_id), now)
                    for limit in sorted(limits, key=lambda lim: counter_key(lim, mediator_id))}
            decided = {limit: gcra(rows[limit].next_allowed, now, self.limits.rate(limit)) for limit in limits}
            refused = [(wait, limit) for limit, (ok, _tat, wait) in decided.items() if not ok]
            if not refused:
                for limit, (_ok, tat, _wait) in decided.items():
                    row = rows[limit]
                    row.next_allowed, row.failures, row.window_start = tat, 0, now
                return Admission(True)
            wait, limit = max(refused)
            rate = self.limits.rate(limit)
            retry = max(1, math.ceil(wait))
            row = rows[limit]
            row.failures += 1
            row.window_start = now
            at = datetime.fromtimestamp(now, UTC)
            details = {"via": via, "limit": limit, "per_hour": rate.per_hour, "burst": rate.burst,
                       "retry_after_s": retry}
            if row.failures == 1:
                audit.record(session, actor=f"mediator:{name}", action="mediator.rate_limit_reached",
                             subject_ref=f"mediator:{name}", peer=peer, now=at, details=details)
            audit.record(session, actor=f"mediator:{name}", action="mediator.rate_limited",
                         subject_ref=f"mediator:{name}", peer=peer, now=at, details=details)
            return Admission(False, limit, retry, rate)
