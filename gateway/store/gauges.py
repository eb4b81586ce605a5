"""Gauges read from the database when ``/metrics`` is scraped (SPEC §10): queue depth and age,
queue entries per status, patient spaces per state; and the whole text exposition, the
process counters of :mod:`gateway.metrics` first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.metrics import REGISTRY
from gateway.store.db import Database
from gateway.store.models import Patient, QueueEntry


def counts(session: Session) -> tuple[dict[str, int], datetime | None, dict[str, int]]:
    """Queue entries per status, the oldest pending one's creation, patient spaces per state:
    grouped counts on every shard, once per scrape (distribution.py's allow-list)."""
    by_status = dict(session.execute(
        select(QueueEntry.status, func.count()).group_by(QueueEntry.status)).tuples().all())
    first = session.execute(select(func.min(QueueEntry.created_at)).where(QueueEntry.status == "pending")).scalar()
    by_state = dict(session.execute(select(Patient.state, func.count()).group_by(Patient.state)).tuples().all())
    return by_status, first, by_state


class StoreCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, db: Database, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("gateway_queue_depth", "Outbound queue entries not yet finished")
        oldest = GaugeMetricFamily("gateway_queue_oldest_age_seconds", "Age of the oldest pending entry")
        entries = GaugeMetricFamily("gateway_queue_entries", "Outbound queue entries per status",
                                    labels=["status"])
        spaces = GaugeMetricFamily("gateway_patient_spaces", "Patient spaces per state", labels=["state"])
        up = GaugeMetricFamily("gateway_store_up", "1 when the database answered this scrape")
        try:
            with self.db.read() as session:
                by_status, first, by_state = counts(session)
        except Exception:  # a scrape reports the outage rather than failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        depth.add_metric([], by_status.get("pending", 0))
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        oldest.add_metric([], max(0.0, (self.clock() - first).total_seconds()) if first else 0.0)
        for status, count in sorted(by_status.items()):
            entries.add_metric([status], count)
        for state, count in sorted(by_state.items()):
            spaces.add_metric([state], count)
        yield from (up, depth, oldest, entries, spaces)


def exposition(db: Database) -> bytes:
    """The whole text exposition: process counters, then the store gauges."""
    store = CollectorRegistry(auto_describe=False)
    store.register(StoreCollector(db))
    return generate_latest(REGISTRY) + generate_latest(store)
