"""Prometheus metrics (/metrics) and a health check (/health) for the running app, on the app's
own aiohttp web server.

Call figures are derived from the journal events the flows emit (``Metrics.observing`` wraps
whatever journal the app writes to), so they count exactly what history shows. Live state —
calls in progress, the ARI connection, reconnects, policy reloads, refused calls — is read from
the app when Prometheus scrapes."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .history.events import CallEnded, CallStarted, Journal, JournalEvent, LegEnded, LegStarted

log = logging.getLogger(__name__)

# The app's share of a forward is milliseconds; an announcement before it adds seconds.
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MISSED = ("no_answer", "busy", "unreachable")
# Calls whose end we never see (the app was killed) must not make the per-call memo grow for ever.
MAX_TRACKED_CALLS = 20_000


class Metrics:
    """The metrics of one app, in their own registry (tests can make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.calls = Counter("pbx_calls", "Calls ended, by result", ["result"], registry=self.registry)
        self.forwards = Counter(
            "pbx_forwards", "Forwards started (to a colleague or a department)", registry=self.registry
        )
        self.ring_delay = Histogram(
            "pbx_ring_delay_seconds",
            "From a call's arrival to its first leg ringing (the app's own latency)",
            buckets=DELAY_BUCKETS,
            registry=self.registry,
        )
        self.forward_delay = Histogram(
            "pbx_forward_delay_seconds",
            "From the end of an unanswered leg to the forward leg starting (announcement included)",
            buckets=DELAY_BUCKETS,
            registry=self.registry,
        )
        self.outbound_refused = Counter(
            "pbx_outbound_refused", "Calls out (callback offers and dials) refused by the toll-fraud guard, by reason",
            ["reason"], registry=self.registry,
        )
        # call id → when it started and when its last unanswered leg ended
        self._calls: OrderedDict[str, dict[str, datetime]] = OrderedDict()

    def observing(self, journal: Journal | None) -> "MetricsJournal":
        """A journal that feeds these metrics and then ``journal`` (None: metrics only)."""
        return MetricsJournal(self, journal)

    def observe(self, event: JournalEvent) -> None:
        if isinstance(event, CallStarted):
            self._memo(event.call_id)["started"] = event.at
        elif isinstance(event, LegStarted):
            memo = self._memo(event.call_id)
            if event.role == "forward":
                self.forwards.inc()
                missed = memo.pop("missed", None)
                if missed is not None:
                    self.forward_delay.observe(_seconds(missed, event.at))
            if event.role in ("employee", "forward"):
                started = memo.pop("started", None)
                if started is not None:
                    self.ring_delay.observe(_seconds(started, event.at))
        elif isinstance(event, LegEnded):
            if event.outcome in MISSED:
                self._memo(event.call_id)["missed"] = event.at
        elif isinstance(event, CallEnded):
            self.calls.labels(event.result).inc()
            self._calls.pop(event.call_id, None)

    def _memo(self, call_id: str) -> dict[str, datetime]:
        memo = self._calls.get(call_id)
        if memo is None:
            memo = self._calls[call_id] = {}
            if len(self._calls) > MAX_TRACKED_CALLS:
                self._calls.popitem(last=False)
        return memo


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


class MetricsJournal:
    """Journal fan-out: metrics first (cannot fail), then the real journal."""

    def __init__(self, metrics: Metrics, inner: Journal | None):
        self.metrics = metrics
        self.inner = inner

    async def record(self, event: JournalEvent) -> None:
        try:
            self.metrics.observe(event)
        except Exception:  # a metrics bug must never cost a history row or a call
            log.exception("metrics: could not observe %r", event)
        if self.inner is not None:
            await self.inner.record(event)


class LiveState:
    """Read at scrape time from the running engine (a CallEngine) and the policy holder."""

    def __init__(self, app: Any, policy: Any):
        self.app = app
        self.policy = policy

    def collect(self):
        app = self.app
        yield GaugeMetricFamily("pbx_calls_in_progress", "Calls the app is carrying now", value=len(app.calls))
        yield GaugeMetricFamily(
            "pbx_ari_connected", "1 while the ARI events websocket is connected", value=int(app.events.connected.is_set())
        )
        yield CounterMetricFamily(
            "pbx_ari_reconnects", "Times the ARI events websocket was connected again after a loss",
            value=app.events.reconnects,
        )
        yield CounterMetricFamily(
            "pbx_calls_refused",
            "New calls left unclaimed (to other engines or the dialplan) because max calls in progress was reached",
            value=getattr(app, "refused", 0),
        )
        events = CounterMetricFamily("pbx_ari_events", "ARI events received, by type", labels=["type"])
        for kind, count in sorted(getattr(app, "event_counts", {}).items(), key=lambda kv: str(kv[0])):
            events.add_metric([str(kind)], count)
        yield events
        requests = CounterMetricFamily("pbx_ari_requests", "ARI requests made, by route", labels=["route"])
        for name, count in sorted((getattr(app.ari, "request_counts", None) or {}).items()):
            requests.add_metric([name], count)
        yield requests
        yield CounterMetricFamily(
            "pbx_calls_taken_over", "Calls claimed after the engine that owned them was gone",
            value=getattr(app, "taken_over", 0),
        )
        yield CounterMetricFamily(
            "pbx_ari_events_skipped", "ARI events dropped unparsed (variables Asterisk sent before its event filter was in force)",
            value=getattr(app.events, "skipped", 0),
        )
        reloads = CounterMetricFamily("pbx_policy_reloads", "Policy reloads, by result", labels=["result"])
        for result, count in (getattr(self.policy, "reloads", None) or {}).items():
            reloads.add_metric([result], count)
        yield reloads


def health(app: Any, policy: Any, journal: Any = None) -> tuple[bool, dict]:
    """Yes/no and counts only: anyone who reaches /health may read it, so no ARI address, error
    text or file path (the log has those)."""
    current = policy() if callable(policy) else None
    body = {
        "ari_connected": app.events.connected.is_set(),
        "policy_loaded": current is not None,
        "calls_in_progress": len(app.calls),
        "max_calls": getattr(app, "max_calls", 0),
    }
    store = getattr(policy, "store_status", None)
    if store is not None:  # the policy follows PostgreSQL (PBX_POLICY_URL)
        body["policy_store"] = store
    spool = getattr(journal, "spool_status", None)
    if spool is not None:  # calls go on while the spool disk is full: say so, stay healthy
        body["journal_spool"] = spool
    nodes = getattr(app, "nodes", None)
    if nodes is not None:  # several Asterisk nodes: healthy while any is served, each one shown
        body["ari_nodes"] = nodes
    ok = body["ari_connected"] and body["policy_loaded"]
    body["status"] = "ok" if ok else "unhealthy"
    return ok, body


def metrics_handler(metrics: Metrics):
    """GET /metrics: the registry in Prometheus' text format."""

    async def get_metrics(request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(metrics.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    return get_metrics


def setup(webapp: web.Application, app: Any, policy: Any, metrics: Metrics, journal: Any = None) -> None:
    """Adds GET /metrics (Prometheus text) and GET /health (JSON; 503 while not healthy)."""
    metrics.registry.register(LiveState(app, policy))

    async def get_health(request: web.Request) -> web.Response:
        ok, body = health(app, policy, journal)
        return web.json_response(body, status=200 if ok else 503)

    webapp.router.add_get("/metrics", metrics_handler(metrics))
    webapp.router.add_get("/health", get_health)


async def serve(webapp: web.Application, bind: str) -> web.AppRunner:
    """Serves ``webapp`` on HOST:PORT (an engine's or the FastAGI server's /health and /metrics)."""
    host, _, port = bind.rpartition(":")
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    log.info("/health and /metrics on http://%s/", bind)
    return runner
