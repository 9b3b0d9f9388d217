"""Issue 31, on real calls through Asterisk: the callback offer is a way to make the company's
trunk call a number the caller chose, so the outbound guard vets it — a premium-pattern or a
withheld number gets no offer (and nothing is dialled), twenty forged numbers within a minute
meet the site's hourly limit (counted in /metrics, told once in the log), an allowed number is
called back as before."""

import asyncio
import re
from datetime import datetime, timezone

import pytest

from pbx_app.callback.ari_phones import AriPhones
from pbx_app.callback import open_callbacks
from pbx_app.callback.service import CallbackService
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.history.records import fold
from pbx_app.history.rows import history
from pbx_app.notices.database import open_database
from pbx_app.notices.outbox import Outbox
from pbx_app.outbound.guard import OutboundGuard
from pbx_app.outbound.stores import open_limits
from tests.support.engines import EngineProcess, all_ended
from tests.support.wait import until

from .conftest import ARI_PASSWORD, ARI_URL, ARI_USER

POLICY = """
site:
  callback_route: "PJSIP/{number}@clients"
  outbound:
    allow: [_79XXXXXXXXX, "_7[348]XXXXXXXXX"]
    deny: [_7809XXXXXXX]
    per_hour: {site: SITE}
employees:
  "101":
    name: Ivan Petrov
    ring_time: 2
    on_no_answer: {action: callback, then: {action: drop, drop: busy}, attempts: 1, retry_after: 6, expires_after: 60}
  "102":
    name: Away
    absences: [{from: 2020-01-01, to: 2099-12-31}]
    on_no_answer: {action: callback, then: {action: drop, drop: busy}}
"""


def policy(site=100) -> str:
    return POLICY.replace("SITE", str(site))


@pytest.fixture
async def guarded(tmp_path, ari):
    """start(app): the callback service with the guard and its counts in one SQLite database."""
    url = f"sqlite:///{tmp_path}/journal.db"
    store, limits = open_callbacks(url), open_limits(url)
    started = []

    def start(app) -> CallbackService:
        refused = []
        service = CallbackService(AriPhones(ari), store, app.app.policy, MemoryJournal(), interval=1.0, lease=15, ring_time=5,
                                  guard=OutboundGuard(limits, refused=refused.append))
        service.refused = refused
        app.app.callbacks = service
        started.append((service, asyncio.create_task(service.run())))
        return service

    start.store = store
    yield start
    for service, task in started:
        await service.drain(20)
        task.cancel()
    await store.close()
    await limits.close()


def told(app, service) -> str:
    [row] = history(fold(list(app.journal.events) + list(service.journal.events)))
    return row.what_happened


@pytest.mark.parametrize("caller, reason, said", [
    ("78091234567", "denied", "no callback offer: the number is not allowed"),
    ("anonymous", "hidden", "no callback offer: the number is hidden"),
])
async def test_a_premium_or_withheld_number_gets_no_offer_and_nothing_is_dialled(start_app, guarded, sip, caller,
                                                                                  reason, said):
    app = await start_app(policy())
    service = guarded(app)
    phone = sip.phone("101", "ring_forever")
    the_client = sip.client_phone("answer")
    client = sip.call_pressing("101", caller=caller)
    assert await client.wait(30) == 0
    assert not client.received(200), "not answered for an offer: the caller gets the action's fallback (busy)"
    assert client.received(486)
    await phone.wait(10)
    [ended] = await app.wait_calls_ended(1)
    assert ended.result == "dropped"
    assert told(app, service) == f"no answer; {said}; busy tone"
    assert service.refused == [reason]
    assert await guarded.store.open(datetime.now(timezone.utc)) == [], "no request stored"
    await asyncio.sleep(2)  # the service looks every second: nothing to call
    assert not the_client.received("INVITE"), "no call out"
    assert service.served == {}


async def test_an_allowed_number_is_called_back_as_before(start_app, guarded, sip, ari):
    app = await start_app(policy())
    service = guarded(app)
    first = sip.phone("101", "ring_forever")
    client = sip.call_pressing("101", caller="+74951234567")
    assert await client.wait(30) == 0 and client.received(200), "answered for the offer"
    await first.wait(10)
    call_id = next(e.call_id for e in app.journal.events if isinstance(e, CallStarted))
    # 101's phone registers anew (the ringing one is gone) before the first try, 6 s after the press.
    employee = sip.keys_phone("101", calls=1)
    the_client = sip.client_phone("answer")
    await until(lambda: the_client.sent(200), 30, "the client is called back and answers")
    assert the_client.received("INVITE")[0].first_line.startswith("INVITE sip:74951234567@127.0.0.1:5301")
    await until(lambda: _done(guarded.store, call_id), 10, "the request is done")
    [leg] = [c for c in await ari.get("/channels") if c["id"].startswith("pbxcb-")]
    await ari.delete(f"/channels/{leg['id']}")
    await until(lambda: service.served.get("answered"), 10, "the attempt is over")
    assert len(employee.received("INVITE")) == 1
    assert told(app, service) == "no answer; callback requested; called back by 101, client answered"
    assert service.refused == []


async def _done(store, call_id):
    r = await store.get(call_id)
    return r is not None and r.state == "done"


async def test_twenty_forged_numbers_within_a_minute_meet_the_site_limit(asterisk, tmp_path, sip):
    """A `pbx-app engine` process, as deployed: 102 is away, so each call is offered the callback
    at once; five requests fit the site's hour, the other fifteen callers get busy."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy(site=5))
    url = f"sqlite:///{tmp_path}/journal.db"
    engine = EngineProcess(tmp_path, "a", {"PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER,
                                           "PBX_ARI_PASSWORD": ARI_PASSWORD, "PBX_POLICY": str(policy_file),
                                           "PBX_DATABASE_URL": url,
                                           "PBX_NOTICE_WEBHOOK_URL": "http://127.0.0.1:9/never-sent"}).start()
    try:
        await engine.healthy()
        callers = []
        for i in range(20):
            callers.append(sip.call_pressing("102", key_after_ms=500, stay_ms=8000, caller=f"7900555{i:04d}"))
            await asyncio.sleep(0.5)
        for c in callers:
            assert await c.wait(60) == 0
        calls = await all_ended(url, 20)
        assert sorted(c.result for c in calls).count("callback_requested") == 5
        # The offer only looks at the count; pressing 1 takes a place. A caller offered while the
        # fifth was still listening may press 1 too late: refused then, and told so.
        offered = sum(1 for c in callers if c.received(200))
        assert 5 <= offered <= 8, f"{offered} offers: most of the forged numbers were not even offered"
        store = open_callbacks(url)
        try:
            assert len(await store.open(datetime.now(timezone.utc))) == 5
        finally:
            await store.close()
        stopped = [r.what_happened for r in history(calls) if r.label is None]
        assert stopped == ["not rung; no callback: too many calls out this hour; busy tone"] * 15
        _, metrics = await engine.get("/metrics")
        assert re.search(r'^pbx_outbound_refused_total\{reason="site_limit"\} 15\.0$', metrics, re.M), metrics
        assert engine.log().count("limit of 5 calls out an hour") == 1, "one log line, not one per call"
        db = open_database(url)
        try:
            notices = [(n["kind"], n["recipient"]) for n in await Outbox(db).journal()]
        finally:
            await db.close()
        assert notices == [("outbound_limit", "webhook")], "one notice to administrators (the notifier sends it)"
    finally:
        engine.stop()
