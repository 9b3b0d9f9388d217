"""The callback service against a scripted ARI: when it calls, whom, in what order, and what each
outcome does to the request and to the call's story. The real calls are in
tests/integration/test_callback.py."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.callback import CallbackRequest, open_callbacks
from pbx_app.callback.ari_phones import AriPhones
from pbx_app.callback.service import CallbackService
from pbx_app.callback import service as callback_service
from pbx_app.history.events import LegEnded, MemoryJournal
from pbx_app.policy import parse_policy

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)  # a Tuesday
POLICY = parse_policy("""
site: {callback_route: "PJSIP/{number}@trunk", timezone: UTC}
employees:
  "101": {name: Ivan}
  "102": {name: Petr, schedule: {mon-fri: "12:00-18:00"}}
""")



def report(channel: dict, name: str, value: str) -> dict:
    """UserEvent(PBX,name:value) from pbx-callback, as Asterisk hands it to the subscribed engine."""
    return {"type": "ChannelUserevent", "eventname": "PBX", "userevent": {"eventname": "PBX", name: value}, "channel": channel}

class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class ScriptedAri:
    """Plays the employee's and the client's phones: ``employee`` is answer | no_answer | busy,
    ``pressed`` the employee's key, ``client`` the DIALSTATUS of the call to the client."""

    app = "pbx_app-t"

    def __init__(self, service_getter, employee="answer", pressed="1", client="ANSWER", in_use=()):
        self.service = service_getter
        self.employee, self.pressed, self.client = employee, pressed, client
        self.in_use = set(in_use)  # endpoints with a channel on them
        self.originated: list[dict] = []
        self.vars: dict[str, dict] = {}
        self.bridged: set[str] = set()

    def talk_ends(self, ch):
        self.bridged.discard(ch["id"])
        self.service().take(report(ch, "cb_client", "ANSWER"))
        self.service().take({"type": "ChannelDestroyed", "cause": 16, "channel": ch})

    def emit(self, event):
        asyncio.get_running_loop().call_soon(lambda: self.service().take(event))

    async def get(self, path, **params):
        if path == "/bridges":
            return [{"id": "dial-bridge", "channels": sorted(self.bridged)}]
        endpoint = path.removeprefix("/endpoints/")
        return {"channel_ids": ["x"] if endpoint in self.in_use else []}

    async def delete(self, path, **params):
        return None

    async def post(self, path, body=None, **params):
        if path == "/channels":
            self.originated.append(params)
            cid = params["channelId"]
            if self.employee == "answer":
                self.emit({"type": "StasisStart", "args": ["callback"], "channel": {"id": cid}})
            else:
                self.emit({"type": "ChannelDestroyed", "cause": 17 if self.employee == "busy" else 19,
                           "channel": {"id": cid}})
        elif path.endswith("/variables"):
            self.vars[path.split("/")[2]] = body["variables"]
        elif path.endswith("/continue"):
            cid = path.split("/")[2]
            ch = {"id": cid}
            self.emit(report(ch, "cb_pressed", self.pressed))
            if self.pressed == "1":
                if self.client == "ANSWER":
                    self.bridged.add(cid)  # what GET /bridges shows while they talk
                    asyncio.get_running_loop().call_later(0.3, self.talk_ends, ch)
                    return None
                self.emit(report(ch, "cb_client", self.client))
            self.emit({"type": "ChannelDestroyed", "cause": 16, "channel": ch})
        return None


@pytest.fixture(autouse=True)
def quick_looks(monkeypatch):
    monkeypatch.setattr(callback_service, "BRIDGE_POLL", 0.05)


@pytest.fixture
async def store(tmp_path):
    s = open_callbacks(f"sqlite:///{tmp_path}/journal.db")
    yield s
    await s.close()


def request(call_id="c1", employee="101", at=T0, **kw):
    values = dict(id=call_id, employee=employee, endpoint=f"PJSIP/{employee}", client="79001234567",
                  route="PJSIP/{number}@trunk", requested_at=at, expires_at=at + timedelta(minutes=10),
                  next_try_at=at, max_attempts=2, retry_after=60, leg=2)
    values.update(kw)
    return CallbackRequest(**values)


def make(store, clock, **script):
    holder = {}
    ari = ScriptedAri(lambda: holder["s"], **script)
    service = CallbackService(AriPhones(ari), store, lambda: POLICY, MemoryJournal(), clock=clock)
    holder["s"] = service
    return service, ari


async def round_(service):
    await service.tick()
    await service.drain(2)


def story(service, call_id="c1"):
    return [(type(e).__name__, e.leg if hasattr(e, "leg") else None, getattr(e, "outcome", None) or getattr(e, "result", None))
            for e in service.journal.events if e.call_id == call_id]


async def test_employee_and_client_answer_the_request_is_done(store):
    clock = Clock()
    service, ari = make(store, clock)
    await store.add(request())
    await round_(service)
    [call] = ari.originated
    assert call["endpoint"] == "PJSIP/101" and call["app"] == "pbx_app-t" and "79001234567" in call["callerId"]
    [variables] = ari.vars.values()
    assert variables["PBX_CB_DIAL"] == "PJSIP/79001234567@trunk"
    assert variables["PBX_CB_CALLERID"] == '"Ivan" <101>'
    assert variables["PBX_CB_LEG"] == "c1:3:callback:101"
    done = await store.get("c1")
    assert (done.state, done.answered_by, done.attempts) == ("done", "101", 1)
    assert story(service) == [("LegStarted", 3, None), ("LegEnded", 3, "answered"), ("LegEnded", 3, "answered"),
                              ("CallEnded", None, "answered")]


async def test_client_not_answering_is_retried_then_the_request_ends(store):
    clock = Clock()
    service, ari = make(store, clock, client="NOANSWER")
    await store.add(request())
    await round_(service)
    first = await store.get("c1")
    assert (first.state, first.attempts, first.next_try_at) == ("waiting", 1, T0 + timedelta(seconds=60))
    clock.now = T0 + timedelta(seconds=30)
    await round_(service)
    assert len(ari.originated) == 1, "not before retry_after"
    clock.now = T0 + timedelta(seconds=61)
    await round_(service)
    last = await store.get("c1")
    assert (last.state, last.attempts) == ("client_no_answer", 2)
    ended = [e for e in service.journal.events if isinstance(e, LegEnded)]
    assert [e.outcome for e in ended] == ["client_no_answer", "client_no_answer"]
    assert ended[-1].cause == "NOANSWER; attempt 2 of 2, the last"


@pytest.mark.parametrize("script, outcome", [({"employee": "no_answer"}, "employee_no_answer"),
                                             ({"employee": "busy"}, "employee_busy"),
                                             ({"pressed": ""}, "employee_declined")])
async def test_the_employee_not_taking_it_keeps_the_request_waiting(store, script, outcome):
    clock = Clock()
    service, ari = make(store, clock, **script)
    await store.add(request())
    await round_(service)
    r = await store.get("c1")
    assert (r.state, r.attempts, r.next_try_at) == ("waiting", 0, T0 + timedelta(seconds=60))
    assert [e.outcome for e in service.journal.events if isinstance(e, LegEnded)] == [outcome]


async def test_a_busy_or_absent_employee_is_not_called(store):
    clock = Clock()
    service, ari = make(store, clock, in_use={"PJSIP/101"})
    later = T0 + timedelta(hours=3)
    await store.add(request(expires_at=later))
    await store.add(request("c2", employee="102", expires_at=later))  # works from 12:00
    await round_(service)
    assert ari.originated == []
    ari.in_use.clear()
    clock.now = T0 + timedelta(hours=2, seconds=1)
    await round_(service)
    assert sorted(c["endpoint"] for c in ari.originated) == ["PJSIP/101", "PJSIP/102"]


async def test_one_employees_requests_are_served_oldest_first(store):
    clock = Clock()
    service, ari = make(store, clock)
    await store.add(request("young", at=T0 + timedelta(seconds=5)))
    await store.add(request("old", at=T0))
    clock.now = T0 + timedelta(seconds=6)
    await round_(service)
    assert len(ari.originated) == 1
    assert (await store.get("old")).state == "done" and (await store.get("young")).state == "waiting"
    await round_(service)
    assert (await store.get("young")).state == "done"


async def test_a_request_past_its_time_expires_into_the_story(store):
    clock = Clock()
    service, ari = make(store, clock, in_use={"PJSIP/101"})
    await store.add(request())
    clock.now = T0 + timedelta(minutes=10)
    await round_(service)
    assert (await store.get("c1")).state == "expired"
    assert story(service) == [("LegStarted", 3, None), ("LegEnded", 3, "expired")]


async def test_an_unreachable_store_does_not_stop_the_service():
    broken = open_callbacks("postgresql://pbx@127.0.0.1:1/none")
    service, ari = make(broken, Clock())
    service.interval = 0.01
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0.2)
    assert not task.done(), "it keeps looking"
    task.cancel()
    await broken.close()
