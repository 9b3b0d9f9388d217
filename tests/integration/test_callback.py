"""Issue 18: a client who was not answered presses 1 (RFC 4733 from SIPp) to be called back; when
the employee is free the app rings the employee, who presses 1, then the client, and Dial()
bridges them — real calls through Asterisk, the request in a real SQLite journal database."""

import asyncio
from datetime import timedelta

import pytest

from pbx_app.ari import AriClient
from pbx_app.callback import open_callbacks
from pbx_app.callback.ari_phones import AriPhones
from pbx_app.callback.service import CallbackService
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.history.records import fold
from pbx_app.history.rows import history, history_row
from tests.support.cdr import master_csv_rows
from tests.support.engines import EngineProcess, all_ended, journal_calls
from tests.support.wait import until

from .conftest import ARI_PASSWORD, ARI_URL, ARI_USER, asterisk_root

POLICY = """
site: {callback_route: "PJSIP/{number}@clients"}
employees:
  "101":
    name: Ivan Petrov
    ring_time: 3
    on_no_answer: {action: callback, then: {action: drop, drop: busy}, attempts: ATTEMPTS, retry_after: RETRY,
                   expires_after: EXPIRES}
"""
CLIENT = "79001234567"


def policy(attempts=2, retry=8, expires=120) -> str:
    return POLICY.replace("ATTEMPTS", str(attempts)).replace("RETRY", str(retry)).replace("EXPIRES", str(expires))


@pytest.fixture
async def callbacks(tmp_path, ari):
    """start(app): a callback service beside the running engine, sharing nothing but the database."""
    store = open_callbacks(f"sqlite:///{tmp_path}/journal.db")
    services: list[tuple[CallbackService, asyncio.Task]] = []

    def start(app, interval=30.0, ring_time=10, attach=True) -> CallbackService:
        service = CallbackService(AriPhones(ari), store, app.app.policy, MemoryJournal(), interval=interval,
                                  lease=15, ring_time=ring_time)
        if attach:
            app.app.callbacks = service
        services.append((service, asyncio.create_task(service.run())))
        return service

    start.store = store
    yield start
    for service, task in services:
        await service.drain(20)
        task.cancel()
    await store.close()


class StoreOnly:
    def __init__(self, store):
        self.add = store.add

    def take(self, event) -> bool:
        return False


class Both:
    """Two services behind one engine's events (one ARI app): each takes its own channels."""

    def __init__(self, services):
        self.services = services
        self.add = services[0].add

    def take(self, event) -> bool:
        return any([s.take(event) for s in self.services])


def story(app, *services) -> list:
    events = list(app.journal.events) + [e for s in services for e in s.journal.events]
    return history(fold(events))


def cdr_rows(call_id: str) -> list[dict]:
    path = asterisk_root() / "var/log/asterisk/cdr-csv/Master.csv"
    return [r for r in master_csv_rows(path.read_text()) if r["userfield"].startswith(call_id + ":")]


async def test_client_presses_1_and_is_called_back_when_the_employee_finishes_another_call(start_app, callbacks, sip, ari):
    app = await start_app(policy(retry=6))
    service = callbacks(app, interval=30.0)  # only the phone going idle can start the callback in time
    first = sip.phone("101", "ring_forever")
    client = sip.call_pressing("101", key_after_ms=1500)
    assert await client.wait(40) == 0
    assert client.received(200), "the client was answered to collect the digit"
    assert client.received("BYE"), "Asterisk hung up after 'we will call you back'"
    await first.wait(10)
    call_id = next(e.call_id for e in app.journal.events if isinstance(e, CallStarted))
    request = await until(lambda: callbacks.store.get(call_id), 5, "the request is stored")
    assert (request.state, request.employee, request.client) == ("waiting", "101", CLIENT)

    # 101 takes another call (answered, 8 s) before the request is due; the callback waits for its end.
    employee = sip.keys_phone("101", calls=2, key_after_ms=1500)
    other = sip.call("101", talk_ms=8000, caller="79005550000", source_ip="127.0.0.2")
    the_client = sip.client_phone("answer")
    await until(lambda: len(employee.received("INVITE")) >= 2, 40, "101 is rung for the callback")
    other_end = other.sent("BYE")[0]
    callback_invite = employee.received("INVITE")[1]
    delay = (callback_invite.at - other_end.at).total_seconds()
    print(f"101 idle -> callback rings 101: {delay * 1000:.0f} ms")
    assert 0 <= delay < 2.0, "the phone going idle started the callback (the periodic look is 30 s away)"
    assert "Callback" in callback_invite.text and CLIENT in callback_invite.text

    await until(lambda: the_client.received("INVITE"), 20, "the client's phone rings")
    [invite] = the_client.received("INVITE")
    assert invite.first_line.startswith(f"INVITE sip:{CLIENT}@127.0.0.1:5301")
    assert "<sip:101@" in next(l for l in invite.text.splitlines() if l.startswith("From:")), "the employee's number"
    await until(lambda: the_client.sent(200), 10, "the client answers")
    done = await until(lambda: _state(callbacks.store, call_id, "done"), 10, "the request is done")
    assert done.answered_by == "101" and done.attempts == 1
    await asyncio.sleep(1.5)  # they talk; then the employee hangs up
    [leg] = [c for c in await ari.get("/channels") if c["id"].startswith("pbxcb-")]
    await ari.delete(f"/channels/{leg['id']}")
    await until(lambda: the_client.received("BYE"), 10, "the client's call ends with the employee's")
    await until(lambda: service.served.get("answered"), 10, "the attempt is over")

    [row] = [r for r in story(app, service) if r.call_id == call_id]
    assert (row.status, row.label, row.employee) == ("answered", "Callback", "101")
    assert row.what_happened == "no answer; callback requested; called back by 101, client answered"
    assert row.talked is not None and row.talked >= 1
    # The legs in Asterisk's CDR: 101's ring, the offer (answered), the callback to the client.
    await asyncio.sleep(1)
    rows = {r["userfield"]: r for r in cdr_rows(call_id)}
    assert rows[f"{call_id}:1:employee:101"]["disposition"] == "NO ANSWER"
    assert rows[f"{call_id}:2:callback_offer:101:answered"]["disposition"] == "ANSWERED"
    back = rows[f"{call_id}:3:callback:101"]
    assert back["disposition"] == "ANSWERED" and back["dstchannel"].startswith("PJSIP/clients-")


async def _state(store, call_id, state):
    r = await store.get(call_id)
    return r if r is not None and r.state == state else None


async def test_client_not_answering_is_tried_again_then_the_request_ends(start_app, callbacks, sip):
    app = await start_app(policy(attempts=2, retry=2, expires=60))
    service = callbacks(app, interval=1.0, ring_time=3)
    first = sip.phone("101", "ring_forever")
    client = sip.call_pressing("101")
    await first.wait(15)
    employee = sip.keys_phone("101", calls=2)
    clients = [sip.client_phone("ring_forever")]
    assert await client.wait(40) == 0
    call_id = next(e.call_id for e in app.journal.events if isinstance(e, CallStarted))
    await until(lambda: clients[0].proc.poll() is not None, 30, "the client's phone rang out")
    clients.append(sip.client_phone("ring_forever"))
    final = await until(lambda: _state(callbacks.store, call_id, "client_no_answer"), 40, "attempts used up")
    assert final.attempts == 2
    assert len(employee.received("INVITE")) == 2
    [row] = [r for r in story(app, service) if r.call_id == call_id]
    assert (row.status, row.label) == ("missed", "Callback")
    assert row.what_happened == ("no answer; callback requested; called back by 101, client did not answer; "
                                 "called back by 101, client did not answer")
    await asyncio.sleep(1)
    backs = [(r["userfield"], r["lastapp"], r["disposition"], r["src"], r["dst"]) for r in cdr_rows(call_id)
             if ":callback:" in r["userfield"]]
    assert backs == [(f"{call_id}:3:callback:101", "Dial", "NO ANSWER", "101", CLIENT),
                     (f"{call_id}:4:callback:101", "Dial", "NO ANSWER", "101", CLIENT)]


async def test_employee_not_answering_keeps_the_request_until_it_expires(start_app, callbacks, sip):
    app = await start_app(policy(attempts=3, retry=2, expires=9))
    service = callbacks(app, interval=1.0, ring_time=2)
    first = sip.phone("101", "ring_forever")
    client = sip.call_pressing("101")
    await first.wait(15)
    # Rings on every callback (a phone-less 101 would leave Asterisk retransmitting INVITEs into the next test).
    employee = sip.phone("101", "ring_forever", calls=20)
    assert await client.wait(40) == 0
    call_id = next(e.call_id for e in app.journal.events if isinstance(e, CallStarted))
    await until(lambda: employee.received("CANCEL"), 20, "101 did not answer the callback")
    request = await callbacks.store.get(call_id)
    assert (request.state, request.attempts) == ("waiting", 0), "the client was never called"
    await until(lambda: _state(callbacks.store, call_id, "expired"), 20, "the request expires")
    [row] = [r for r in story(app, service) if r.call_id == call_id]
    assert row.what_happened.startswith("no answer; callback requested; callback: 101 did not answer")
    assert row.what_happened.endswith("; callback expired")


async def test_a_request_left_by_a_dead_engine_is_served_once_by_another(start_app, callbacks, sip, ari):
    app = await start_app(policy(retry=2, expires=120))
    app.app.callbacks = StoreOnly(callbacks.store)  # requests are stored; no service runs yet
    sip.phone("101", "ring_forever")
    client = sip.call_pressing("101")
    assert await client.wait(40) == 0
    call_id = next(e.call_id for e in app.journal.events if isinstance(e, CallStarted))
    # Engine a claimed the request and died before ringing anyone: its lease (15 s) runs out.
    request = await callbacks.store.get(call_id)
    now = request.next_try_at
    assert await callbacks.store.claim(request, "pbx_app-dead", now, now + timedelta(seconds=3)) is not None
    employee = sip.keys_phone("101", calls=1)
    the_client = sip.client_phone("answer")
    services = [callbacks(app, interval=1.0, attach=False), callbacks(app, interval=1.0, attach=False)]
    app.app.callbacks = Both(services)
    await until(lambda: the_client.sent(200), 40, "the client is called back and answers")
    await asyncio.sleep(1)
    [leg] = [c for c in await ari.get("/channels") if c["id"].startswith("pbxcb-")]
    await ari.delete(f"/channels/{leg['id']}")
    await until(lambda: sum(s.served.get("answered", 0) for s in services) == 1, 10, "served once")
    await asyncio.sleep(3)
    assert len(employee.received("INVITE")) == 1 and len(the_client.received("INVITE")) == 1
    row = next(r for r in story(app, *services) if r.call_id == call_id)
    # The dead engine rang nobody: its claim leaves no line in the story.
    assert row.what_happened == "no answer; callback requested; called back by 101, client answered"


async def test_engine_processes_one_killed_while_a_request_waits_the_other_serves_it_once(asterisk, tmp_path, sip):
    """Two `pbx-app engine` processes on one journal database; the one that took the request is
    killed with SIGKILL before it is due; the survivor calls back, once."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy(retry=6, expires=120))
    url = f"sqlite:///{tmp_path}/journal.db"
    base = {"PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER, "PBX_ARI_PASSWORD": ARI_PASSWORD,
            "PBX_POLICY": str(policy_file), "PBX_DATABASE_URL": url, "PBX_CALLBACK_INTERVAL": "1",
            "PBX_SWEEP_INTERVAL": "1"}
    engines = [EngineProcess(tmp_path, name, base).start() for name in ("a", "b")]
    try:
        for engine in engines:
            await engine.healthy()
        first = sip.phone("101", "ring_forever")
        client = sip.call_pressing("101")
        await first.wait(15)
        [call] = await all_ended(url, 1)
        assert call.result == "callback_requested"
        [owner] = [e for e in engines if f"call {call.call_id} " in e.log() and "callback_requested" in e.log()]
        owner.kill()
        [survivor] = [e for e in engines if e is not owner]
        employee = sip.keys_phone("101", calls=2)
        the_client = sip.client_phone("answer")
        assert await client.wait(30) == 0
        await until(lambda: the_client.sent(200), 30, "the survivor calls back and the client answers")
        store = open_callbacks(url)
        try:
            done = await until(lambda: _state(store, call.call_id, "done"), 10, "the request is done")
        finally:
            await store.close()
        assert done.answered_by == "101"
        await asyncio.sleep(2)
        [leg] = [c for c in await _channels() if c["id"].startswith("pbxcb-")]
        await _hang_up(leg["id"])
        await until(lambda: the_client.received("BYE"), 10, "the callback ends")
        await asyncio.sleep(3)
        assert len(employee.received("INVITE")) == 1, "called back once"
        assert f"callback {call.call_id}: 101 called 79001234567 back" in survivor.log()

        async def told() -> bool:
            [again] = await journal_calls(url)
            return history_row(again).what_happened == "no answer; callback requested; called back by 101, client answered"

        await until(told, 10, "the survivor's journal tells the callback")
    finally:
        for engine in engines:
            engine.stop()


async def _channels() -> list:
    ari = AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "pbx_app-test")
    try:
        return await ari.get("/channels")
    finally:
        await ari.close()


async def _hang_up(channel_id: str) -> None:
    ari = AriClient(ARI_URL, ARI_USER, ARI_PASSWORD, "pbx_app-test")
    try:
        await ari.delete(f"/channels/{channel_id}")
    finally:
        await ari.close()
