"""/metrics and /health: figures derived from the journal of real (fake-ARI) calls, live state
read from the app."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from pbx_app import observability
from pbx_app.calls.engine import CallEngine
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted, MemoryJournal
from pbx_app.policy import parse_policy
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import call_over, engine_on

POLICY = """
employees:
  "101": {name: Ivan, ring_time: 3, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 5}
"""


class Holder:
    def __init__(self, policy):
        self.current = policy
        self.reloads = {"ok": 2, "refused": 1}

    def __call__(self):
        return self.current


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def serve(app, holder, metrics):
    webapp = web.Application()
    observability.setup(webapp, app, holder, metrics)
    client = TestClient(TestServer(webapp))
    await client.start_server()
    return client


async def test_call_metrics_come_from_the_journal_and_the_inner_journal_still_gets_everything():
    metrics = observability.Metrics()
    inner = MemoryJournal()
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    holder = Holder(parse_policy(POLICY))
    app = engine_on(fake, holder, journal=metrics.observing(inner))
    for channel in (fake.new_call("101"), fake.new_call("102")):
        await call_over(fake, app, channel)
    client = await serve(app, holder, metrics)
    try:
        resp = await client.get("/metrics")
        assert resp.status == 200
        got = samples(await resp.text())
    finally:
        await client.close()
    assert got[("pbx_calls_total", (("result", "answered"),))] == 2
    assert got[("pbx_forwards_total", ())] == 1
    assert got[("pbx_ring_delay_seconds_count", ())] == 2
    assert got[("pbx_forward_delay_seconds_count", ())] == 1
    assert got[("pbx_calls_in_progress", ())] == 0
    assert got[("pbx_policy_reloads_total", (("result", "ok"),))] == 2
    assert got[("pbx_policy_reloads_total", (("result", "refused"),))] == 1
    assert got[("pbx_ari_connected", ())] == 0
    assert len([e for e in inner.events if isinstance(e, CallEnded)]) == 2


async def test_forward_delay_is_measured_from_the_missed_leg_to_the_forward():
    metrics = observability.Metrics()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for event in (
        CallStarted("c", t0, "7900", "101", "ch"),
        LegStarted("c", 1, t0 + timedelta(milliseconds=4), "employee", ("101",)),
        LegEnded("c", 1, t0 + timedelta(seconds=3), "no_answer"),
        LegStarted("c", 2, t0 + timedelta(seconds=3, milliseconds=7), "forward", ("102",)),
        CallEnded("c", t0 + timedelta(seconds=9), "answered"),
    ):
        metrics.observe(event)
    got = samples(observability.generate_latest(metrics.registry).decode())
    assert abs(got[("pbx_forward_delay_seconds_sum", ())] - 0.007) < 1e-9
    assert abs(got[("pbx_ring_delay_seconds_sum", ())] - 0.004) < 1e-9
    assert got[("pbx_forward_delay_seconds_bucket", (("le", "0.01"),))] == 1
    assert got[("pbx_forward_delay_seconds_bucket", (("le", "0.005"),))] == 0
    assert not metrics._calls, "nothing kept once the call ended"


async def test_calls_that_never_end_do_not_grow_memory_for_ever(monkeypatch):
    monkeypatch.setattr(observability, "MAX_TRACKED_CALLS", 10)
    metrics = observability.Metrics()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for n in range(100):
        metrics.observe(CallStarted(f"c{n}", t0, "7900", "101", "ch"))
    assert len(metrics._calls) <= 11


async def test_a_broken_observer_never_costs_a_history_row():
    metrics = observability.Metrics()
    metrics.observe = lambda event: 1 / 0
    inner = MemoryJournal()
    event = CallEnded("c", datetime.now(timezone.utc), "answered")
    await metrics.observing(inner).record(event)
    assert inner.events == [event]


async def test_health_says_unhealthy_until_ari_is_connected():
    metrics = observability.Metrics()
    fake = FakeAsterisk()
    holder = Holder(parse_policy(POLICY))
    app = CallEngine(fake, holder, journal=metrics.observing(None))
    app.events.last_error = "cannot reach Asterisk's ARI at http://127.0.0.1:8088: connection refused"
    client = await serve(app, holder, metrics)
    try:
        resp = await client.get("/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["status"] == "unhealthy" and body["policy_loaded"] and not body["ari_connected"]
        assert "ari_error" not in body and "8088" not in await resp.text(), "no ARI address or error for anyone"
        assert "policy" not in body, "no file path either"
        app.events.connected.set()
        resp = await client.get("/health")
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    finally:
        await client.close()
