"""Metrics for Prometheus (prometheus-client), the same picture from every process.

- Counted where they happen: requests and their latency per route pattern (never the URL), sends per channel and
  outcome (senders), job runs per job and outcome (scheduler).
- Several processes on one host write to `PROMETHEUS_MULTIPROC_DIR` (gunicorn.conf.py sets and wipes it at start
  and marks each dead worker); the web's `/metrics` sums them. A sender or scheduler on a host of its own exposes
  its own port instead (`metrics.port`).
- Read at scrape time, cheaply: outbox rows per status (counted up to a bound, by index), the age of the oldest due
  row, whether a scheduler leads, and each job's last success (kept in Redis by the scheduler).

`/metrics` answers only the configured networks (`metrics.allow_from`) or a request with the configured token.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time

from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from app.logs import KNOWN_METHODS

log = logging.getLogger(__name__)

REQUESTS = Counter("smart_union_http_requests_total", "API requests", ["route", "method", "status"])
LATENCY = Histogram("smart_union_http_request_seconds", "API request latency", ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SENDS = Counter("smart_union_sends_total", "WeChat sends by the senders", ["channel", "outcome"])
JOB_RUNS = Counter("smart_union_job_runs_total", "Scheduler job runs", ["job", "outcome"])
COUNT_BOUND = 100_000          # outbox rows per status are counted up to this many


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_count_request)
    app.add_url_rule("/metrics", "metrics", metrics_view)


def _start_timer() -> None:
    g._get_current_object().started = time.perf_counter()      # not through the proxy: app.extensions.this_app


def _count_request(response: Response) -> Response:
    req = request._get_current_object()
    route = req.url_rule.rule if req.url_rule is not None else "(no route)"
    if route != "/metrics":
        method = req.method if req.method in KNOWN_METHODS else "OTHER"    # a label per method sent
        started = g._get_current_object().get("started", time.perf_counter())
        _child(REQUESTS, route, method, str(response.status_code)).inc()
        _child(LATENCY, route, method).observe(time.perf_counter() - started)
    return response


_CHILDREN: dict[tuple, object] = {}


def _child(metric, *labels: str):
    """`metric.labels(*labels)`, kept per process: the same few routes are counted on every request."""
    key = (metric, labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


def metrics_view() -> Response:
    if not _allowed():
        abort(404)       # as if there were nothing here
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = _single_process_registry()
    registry.register(StateCollector(current_app._get_current_object()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _single_process_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (REQUESTS, LATENCY, SENDS, JOB_RUNS):
        registry.register(collector)
    return registry


def _allowed() -> bool:
    settings = current_app.config["SU"].metrics
    if settings.token and request.headers.get("Authorization") == f"Bearer {settings.token}":
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.allow_from)


def serve_own_port(port: int) -> None:
    """A sender or scheduler on its own host exposes its counters itself."""
    if port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
        log.info("metrics on port %s", port)


class StateCollector:
    """What the outbox and the scheduler look like right now, read at scrape time."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        from app.services import delivery, scheduler_state

        with self.app.app_context():
            counts, oldest = delivery.outbox_state(COUNT_BOUND)
            leader, last_success = scheduler_state.read()
        rows = GaugeMetricFamily("smart_union_outbox_rows", f"Outbox rows per status (counted up to {COUNT_BOUND})",
                                 labels=["status"])
        for status, n in counts.items():
            rows.add_metric([status], n)
        yield rows
        yield GaugeMetricFamily("smart_union_outbox_oldest_due_seconds",
                                "Age of the oldest row due to be sent (0: none waiting)", value=oldest)
        yield GaugeMetricFamily("smart_union_scheduler_leader", "1 when a scheduler holds the leader lock",
                                value=1 if leader else 0)
        jobs = GaugeMetricFamily("smart_union_job_last_success_timestamp_seconds",
                                 "When each scheduler job last ran without error", labels=["job"])
        for job, at in last_success.items():
            jobs.add_metric([job], at)
        yield jobs
