"""``/metrics``: Prometheus text format, counters that move where events happen, protected."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.accounts.jobs import JobConfig, run_job
from gateway.testing.live import live_gateway
from gateway.testing.ports import free_port, listen_env
from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.world import PASSWORD
from tests.admin_web.conftest import AdminSite
from tests.web.kit import new_ins, pro_sends

FAMILIES = {"gateway_connections", "gateway_messages_accepted", "gateway_messages_refused", "gateway_deliveries",
            "gateway_login_failures", "gateway_job_runs", "gateway_queue_depth", "gateway_queue_oldest_age_seconds",
            "gateway_queue_entries", "gateway_patient_spaces", "gateway_store_up"}


def scrape(site: AdminSite) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    r = httpx.get(site.url + "/metrics", headers={"Authorization": f"Bearer {site.token}"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    names = set()
    for family in text_string_to_metric_families(r.text):
        names.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert FAMILIES <= names, FAMILIES - names
    return r.text, samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_an_admin_token(site: AdminSite) -> None:
    assert httpx.get(site.url + "/metrics").status_code == 401
    assert httpx.get(site.url + "/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_counters_move_where_events_happen_and_hold_no_personal_data(site: AdminSite) -> None:
    _, before = scrape(site)
    ins = new_ins()
    # an accepted message (submission), a refused recipient (invalid INS), a failed login, a job run
    from tests.web.kit import provision

    provision(site.home, ins)
    with site.live.services.db.write() as session:
        from gateway.accounts.patients import by_ins

        patient = by_ins(session, site.live.services.keys, ins)
        assert patient is not None
        patient.state = "open"
    pro_sends(site.live, site.world, ins)
    with submission_client(site.live, site.world.pro, PASSWORD) as client:
        t = transaction(client, site.world.pro, [f"123456789012345@{site.world.patient_domain}"], None)
        assert t.rcpts[0][0] == 550
    try:
        submission_client(site.live, site.world.pro, "wrong password").quit()
    except smtplib.SMTPAuthenticationError:
        pass
    svc = site.live.services
    run_job(svc.db, svc.keys, JobConfig(svc.settings.patients, svc.settings.jobs), "expire-codes", datetime.now(UTC))
    text, after = scrape(site)
    assert value(after, "gateway_messages_accepted_total", listener="submission") >= \
        value(before, "gateway_messages_accepted_total", listener="submission") + 1
    refused = {k: v for k, v in after.items() if k[0] == "gateway_messages_refused_total"
               and dict(k[1])["phase"] == "rcpt" and v > before.get(k, 0)}
    assert refused, "the refused recipient was not counted"
    assert value(after, "gateway_connections_total", listener="submission") >= \
        value(before, "gateway_connections_total", listener="submission") + 3
    assert value(after, "gateway_login_failures_total", protocol="smtp", reason="auth.failed") > \
        value(before, "gateway_login_failures_total", protocol="smtp", reason="auth.failed")
    assert value(after, "gateway_job_runs_total", job="expire-codes", result="ran") == \
        value(before, "gateway_job_runs_total", job="expire-codes", result="ran") + 1
    assert value(after, "gateway_patient_spaces", state="open") >= 2
    assert value(after, "gateway_store_up") == 1
    assert ins not in text and "@" not in text


def test_admin_login_failures_are_counted(site: AdminSite) -> None:
    _, before = scrape(site)
    from tests.admin_web.test_access import login

    with httpx.Client(base_url=site.url) as client:  # a valid code (never checked: the password fails first)
        assert login(client, site, password="not the password", code=site.totp.now()).status_code == 401
    _, after = scrape(site)
    assert value(after, "gateway_login_failures_total", protocol="admin", reason="auth.failed") == \
        value(before, "gateway_login_failures_total", protocol="admin", reason="auth.failed") + 1


def test_separate_metrics_listener_without_token(site: AdminSite) -> None:
    from gateway.app.listeners import start_http, start_metrics

    port = free_port()
    env = {**listen_env(), "GATEWAY__METRICS__LISTEN": f"127.0.0.1:{port}"}
    with live_gateway(site.home, env=env, factories=[start_http, start_metrics]) as other:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "gateway_queue_depth" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/admin/").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{other.port('http')}/metrics").status_code == 401
