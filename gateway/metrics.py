"""Operator metrics (SPEC §10) in the Prometheus text format, with ``prometheus_client``.

Counters live in one process-wide registry and are incremented where events happen
(SMTP flow, authentication, jobs, the outbound worker). Gauges that describe the
store (queue depth and age, mailboxes per state) are read from the database when
``/metrics`` is scraped (:mod:`gateway.store.gauges`), so every process of a cluster
reports the same figures.
Labels carry reason codes, listener and job names only: never an address, an INS or
anything from a message.

Layer: the bottom of ``gateway``, beside ``gateway.settings``: every layer counts, so this
module imports nothing of ``gateway``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS = Counter("gateway_connections", "Connections accepted, per listener",
                      ["listener"], registry=REGISTRY)
MESSAGES_ACCEPTED = Counter("gateway_messages_accepted", "Messages accepted (250 after durable commit)",
                            ["listener"], registry=REGISTRY)
MESSAGES_REFUSED = Counter("gateway_messages_refused", "Commands refused by policy, per phase and reason code",
                           ["listener", "phase", "reason"], registry=REGISTRY)
DELIVERIES = Counter("gateway_deliveries", "Outbound queue attempts, per outcome",
                     ["outcome"], registry=REGISTRY)
LOGIN_FAILURES = Counter("gateway_login_failures", "Failed logins, per protocol and reason",
                         ["protocol", "reason"], registry=REGISTRY)
REFUSALS = Counter("gateway_limit_refusals",
                   "Connections and requests refused by a resource limit, per listener and reason",
                   ["listener", "reason"], registry=REGISTRY)
JOB_RUNS = Counter("gateway_job_runs", "Lifecycle job runs, per job and result",
                   ["job", "result"], registry=REGISTRY)
HEALTH_DOCUMENTS = Counter("gateway_health_documents",
                           "Health documents (IHE XDM) at delivery: patient recipients refused and what was"
                           " noted, per reason code", ["reason"], registry=REGISTRY)


COUNTERS: dict[str, Counter] = {
    "connections": CONNECTIONS, "messages_accepted": MESSAGES_ACCEPTED, "messages_refused": MESSAGES_REFUSED,
    "deliveries": DELIVERIES, "login_failures": LOGIN_FAILURES, "job_runs": JOB_RUNS,
    "limit_refusals": REFUSALS, "health_documents": HEALTH_DOCUMENTS,
}

forward: Callable[[str, tuple[str, ...]], None] | None = None
"""Set in an SMTP process: counts go to the serving process (``gateway.delivery.smtp_processes``)."""


def count(name: str, labels: tuple[str, ...]) -> None:
    """Add one to counter ``name`` with these label values; never raises.

    A metric must never break the path that counts it: unknown names and wrong label
    counts (a notice from another process) are dropped.
    """
    try:
        if forward is not None:
            forward(name, labels)
            return
        counter = COUNTERS.get(name)
        if counter is not None:
            counter.labels(*labels).inc()
    except Exception:  # noqa: S110 - counting is best effort by design
        pass


def connection(listener: str) -> None:
    count("connections", (listener,))


def accepted(listener: str) -> None:
    count("messages_accepted", (listener,))


def refused(listener: str, phase: str, reason: str) -> None:
    count("messages_refused", (listener, phase, reason[:64]))


def limit_refused(listener: str, reason: str) -> None:
    """A connection or request refused by a budget: ``listener_full``, ``address_full``,
    ``timeout``, ``login_timeout``, ``memory``, ``tls_handshake`` (``gateway.net.budgets``)."""
    count("limit_refusals", (listener, reason))


def delivery(outcome: str) -> None:
    count("deliveries", (outcome,))


def login_failure(protocol: str, reason: str) -> None:
    count("login_failures", (protocol, reason))


def health_documents(reason: str) -> None:
    """A patient recipient refused (``data.document_*``) or a note (``health.*``), :mod:`healthdocs.decide`."""
    count("health_documents", (reason[:64],))


def job_run(job: str, result: str) -> None:
    count("job_runs", (job, result))
