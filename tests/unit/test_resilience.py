"""The app's resilience logic against the fake ARI: the overload guard, picking calls up again
after a (re)connect, and the events stream's errors and giving up."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.ari import AriClient
from pbx_app.ari.events import AriGaveUp, EventStream
from pbx_app.calls.app import StasisApp, stasis_args
from pbx_app.calls.flow import Cursor
from pbx_app.history.events import CallEnded, CallStarted, MemoryJournal
from pbx_app.policy import parse_policy
from pbx_app.routing.decide import CallContext, decide
from pbx_app.testing import FakeAsterisk

POLICY = """
employees:
  "101": {name: Ivan, ring_time: 3, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 5}
"""


class ListingFake(FakeAsterisk):
    """FakeAsterisk that also answers GET /channels and records continues to the fallback."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.listing: list[dict] = []
        self.fallbacks: list[tuple] = []

    async def request(self, method, path, body=None, **params):
        if method == "GET" and path == "/channels":
            return self.listing
        if path.endswith("/continue") and params.get("label") == "app-down":
            self.fallbacks.append((path.split("/")[2], params["context"], params["extension"]))
            return None
        return await super().request(method, path, body, **params)

    def orphan(self, app_data: str, variables: dict[str, str]) -> str:
        """A caller that sits in Stasis(app_data) from before the app (re)started."""
        n = len(self.channels) + 1000
        ch_id = f"fake.{n}"
        from pbx_app.testing import FakeChannel

        ch = FakeChannel(id=ch_id, name=f"PJSIP/client-en-{n:08x}", caller="79001234567", language="en")
        ch.vars.update(variables)
        self.channels[ch_id] = ch
        self.listing.append({**self._json(ch), "dialplan": {"context": "pbx-dial", "exten": "101", "priority": 3,
                                                          "app_name": "Stasis", "app_data": app_data}})
        return ch_id


def make_app(fake, policy=POLICY):
    journal = MemoryJournal()
    app = StasisApp(fake, lambda: parse_policy(policy), journal=journal)
    fake.attach(app)
    return app, journal


def dials(fake, channel_id):
    return [a[1] for a in fake.actions_for(channel_id) if a[0] == "dial"]


def test_stasis_args_only_for_our_app():
    ours = {"dialplan": {"app_name": "Stasis", "app_data": "pbx_app,dialed,NOANSWER,19"}}
    assert stasis_args(ours, "pbx_app") == ["dialed", "NOANSWER", "19"]
    assert stasis_args(ours, "other") is None
    assert stasis_args({"dialplan": {"app_name": "Dial", "app_data": "PJSIP/101,2,r"}}, "pbx_app") is None
    assert stasis_args({}, "pbx_app") is None


async def test_over_max_calls_a_new_call_goes_to_the_dialplan_fallback():
    fake = ListingFake(phones={"PJSIP/101": "answer"})
    app, journal = make_app(fake)
    app.max_calls = 1
    first = fake.new_call("101")
    second = fake.new_call("102")
    await fake.settle()
    assert fake.fallbacks == [(second, "pbx-direct", "102")]
    assert app.refused == 1
    assert [e.extension for e in journal.events if isinstance(e, CallStarted)] == ["101"]
    assert dials(fake, first) == [("PJSIP/101",)]
    # Room again: the next call is the app's.
    third = fake.new_call("101")
    await fake.settle()
    assert dials(fake, third) == [("PJSIP/101",)] and app.refused == 1


async def test_no_limit_by_default():
    fake = ListingFake()
    app, _ = make_app(fake)
    for _ in range(5):
        fake.new_call("102")
    assert len(app.calls) == 5 and not fake.fallbacks
    await fake.settle()


def stored_plan(extension="101"):
    return decide(parse_policy(POLICY), CallContext(extension=extension, caller="79001234567", at=datetime.now(timezone.utc)))


async def test_caller_left_in_stasis_after_ringing_is_forwarded_on_connect():
    fake = ListingFake(phones={"PJSIP/102": "answer"})
    app, journal = make_app(fake)
    plan = stored_plan()
    orphan = fake.orphan("pbx_app,dialed,NOANSWER,19",
                         {"PBX_CALL_ID": "c1", "PBX_PLAN": plan.to_json(), "PBX_CURSOR": Cursor("first", 0, 1).encode()})
    await app._on_connect()
    # Its StasisStart was already on the wire when we listed it: it must not count twice.
    fake._emit({"type": "StasisStart", "args": ["dialed", "NOANSWER", "19"], "channel": fake._json(fake.channels[orphan])})
    await fake.settle()
    assert dials(fake, orphan) == [("PJSIP/102",)]
    [ended] = [e for e in journal.events if isinstance(e, CallEnded)]
    assert (ended.call_id, ended.result) == ("c1", "answered")
    assert not app.calls and not app._replayed


async def test_new_call_left_in_stasis_before_it_was_taken_is_started():
    fake = ListingFake(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    app, journal = make_app(fake)
    orphan = fake.orphan("pbx_app,direct,101", {})
    await app._on_connect()
    await fake.settle()
    assert dials(fake, orphan) == [("PJSIP/101",), ("PJSIP/102",)]
    assert len([e for e in journal.events if isinstance(e, CallStarted)]) == 1


async def test_call_taken_but_not_yet_rung_restarts_without_a_second_start_row():
    fake = ListingFake(phones={"PJSIP/101": "answer"})
    app, journal = make_app(fake)
    orphan = fake.orphan("pbx_app,direct,101", {"PBX_CALL_ID": "c2", "PBX_PLAN": stored_plan().to_json()})
    await app._on_connect()
    await fake.settle()
    assert dials(fake, orphan) == [("PJSIP/101",)]
    assert not [e for e in journal.events if isinstance(e, CallStarted)]
    assert [e.call_id for e in journal.events if isinstance(e, CallEnded)] == ["c2"]


async def test_flow_whose_channel_vanished_while_disconnected_ends():
    fake = ListingFake()
    app, journal = make_app(fake)

    async def parked(call, extension):  # a flow waiting for an event that will never come
        await call.wait_reentry()

    app._new_call = parked
    channel = fake.new_call("101")
    await asyncio.sleep(0)
    assert channel in app.calls
    fake.listing = []  # Asterisk restarted: the channel is gone
    await app._on_connect()
    await fake.settle()
    assert not app.calls and not app.tasks


async def test_flow_in_stasis_during_a_reconnect_is_started_over_from_its_state():
    fake = ListingFake(phones={"PJSIP/102": "answer"})
    app, journal = make_app(fake)
    plan = stored_plan()
    orphan = fake.orphan("pbx_app,dialed,NOANSWER,19",
                         {"PBX_CALL_ID": "c3", "PBX_PLAN": plan.to_json(), "PBX_CURSOR": "first:0:1"})
    stuck = asyncio.Event()

    async def parked(call, what, args):  # e.g. waiting for a PlaybackFinished lost in the gap
        await stuck.wait()

    original = app._recover
    app._recover = parked
    await app._on_connect()
    await asyncio.sleep(0)
    old_task = app._flows[orphan]
    app._recover = original
    await app._on_connect()  # the websocket dropped and came back
    await fake.settle()
    assert old_task.cancelled()
    assert dials(fake, orphan) == [("PJSIP/102",)]
    assert not app.calls


# ---- the events stream ----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def first_event(stream: EventStream):
    async for event in stream:
        return event


async def test_unreachable_asterisk_is_named_and_given_up_on():
    url = f"http://127.0.0.1:{closed_port()}"
    client = AriClient(url, "pbx_app", "secret", "pbx_app")
    stream = EventStream(client, min_backoff=0.01, give_up_after=0.1)
    with pytest.raises(AriGaveUp) as info:
        await asyncio.wait_for(first_event(stream), 5)
    assert f"cannot reach Asterisk's ARI at {url}: connection refused" in str(info.value)
    assert "gave up after" in str(info.value)
    await client.close()


async def test_wrong_password_is_named_and_retried():
    attempts = 0

    async def events(request):
        nonlocal attempts
        attempts += 1
        raise web.HTTPUnauthorized()

    webapp = web.Application()
    webapp.router.add_get("/ari/events", events)
    async with TestServer(webapp, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        client = AriClient(url, "pbx_app", "wrong", "pbx_app")
        stream = EventStream(client, min_backoff=0.01, give_up_after=0.2)
        with pytest.raises(AriGaveUp) as info:
            await asyncio.wait_for(first_event(stream), 5)
        await client.close()
    assert f"{url} refused user 'pbx_app': wrong ARI user or password (401)" in str(info.value)
    assert attempts >= 2, "it retried before giving up"
    assert stream.last_error and "401" in stream.last_error


async def test_reconnects_after_a_drop_and_calls_the_hook_each_time():
    connections = 0

    async def events(request):
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "Hello", "n": connections})
        await ws.close()  # Asterisk went away
        return ws

    webapp = web.Application()
    webapp.router.add_get("/ari/events", events)
    hooks = 0

    async def on_connect():
        nonlocal hooks
        hooks += 1
        if hooks == 1:
            raise RuntimeError("a failing hook must not stop the stream")

    async with TestServer(webapp, host="127.0.0.1") as server:
        client = AriClient(str(server.make_url("")).rstrip("/"), "pbx_app", "x", "pbx_app")
        stream = EventStream(client, on_connect=on_connect, min_backoff=0.01)
        seen = []
        async for event in stream:
            seen.append(event["n"])
            if len(seen) == 3:
                break
        await client.close()
    assert seen == [1, 2, 3]
    assert hooks == 3 and stream.reconnects == 2


async def test_a_call_whose_flow_cannot_start_still_rings_through_the_dialplan():
    fake = ListingFake()
    app, _ = make_app(fake)

    async def broken(call, extension):
        raise TypeError("a bug before the flow got going")

    app._new_call = broken
    channel = fake.new_call("101")
    await fake.settle()
    assert fake.fallbacks == [(channel, "pbx-direct", "101")]
    assert not app.calls and not app.tasks


def test_only_the_voicemail_counts_among_channel_variables_are_read():
    from pbx_app.calls.app import unwanted_varset

    flood = '{"variable":"BRIDGEPEER","value":"PJSIP/102-0000001","type":"ChannelVarset","channel":{"id":"1"}}'
    wanted = '{"variable": "PBX_VM_AFTER", "value": "1", "type": "ChannelVarset", "channel": {"id": "1"}}'
    other = '{"type":"Dial","dialstatus":"ANSWER","peer":{"name":"PJSIP/102-1"},"caller":{"id":"1"}}'
    assert unwanted_varset(flood)
    assert not unwanted_varset(wanted)
    assert not unwanted_varset(other)


async def test_each_connect_narrows_the_events_asterisk_sends():
    fake = ListingFake()
    app, _ = make_app(fake)
    sent = []
    original = fake.request

    async def spy(method, path, body=None, **params):
        sent.append((method, path, body))
        return await original(method, path, body, **params)

    fake.request = spy
    await app._on_connect()
    [(method, path, body)] = [s for s in sent if "eventFilter" in s[1]]
    assert (method, path) == ("PUT", "/applications/pbx_app/eventFilter")
    allowed = {a["type"] for a in body["allowed"]}
    assert {"StasisStart", "Dial", "ChannelDestroyed", "PlaybackFinished", "ChannelVarset"} <= allowed
    assert "ChannelDialplan" not in allowed


async def test_a_caller_stranded_in_stasis_after_its_flow_ended_goes_to_the_fallback(monkeypatch):
    import pbx_app.calls.app as app_module
    from pbx_app.ari import AriError

    monkeypatch.setattr(app_module, "STUCK_AFTER", 0.0)
    fake = ListingFake()
    app, journal = make_app(fake)
    # An overloaded Asterisk drops every request for this caller, its hangup included.
    fake.failing["/channels/fake.1"] = AriError(0, "Server disconnected")
    fake.failing["/applications"] = AriError(0, "Server disconnected")
    channel = fake.new_call("101")
    await fake.settle()
    assert not app.calls, "the flow gave up"
    assert [e.result for e in journal.events if isinstance(e, CallEnded)] == ["failed"]
    fake.listing = [{**fake._json(fake.channels[channel]),
                     "dialplan": {"context": "pbx-direct", "exten": "101", "app_name": "Stasis", "app_data": "pbx_app,direct,101"}}]
    await app._sweep()
    await fake.settle()
    assert fake.fallbacks == [(channel, "pbx-direct", "101")], "the dialplan rings the employee instead"


async def test_a_caller_whose_recovery_keeps_failing_goes_to_the_fallback():
    fake = ListingFake()
    app, _ = make_app(fake)
    orphan = fake.orphan("pbx_app,direct,101", {})
    app._recoveries[orphan] = 2
    await app._sweep()
    await fake.settle()
    assert fake.fallbacks == [(orphan, "pbx-dial", "101")]
    assert not app.calls


async def test_the_sweep_forgets_channels_that_are_gone():
    fake = ListingFake(phones={"PJSIP/101": "answer"})
    app, _ = make_app(fake)
    fake.new_call("101")
    await fake.settle()
    assert app._ended
    await app._sweep()
    assert not app._ended and not app._recoveries


def test_limits_come_from_the_environment_with_clear_errors():
    from pbx_app.settings import Settings

    base = {"PBX_ARI_PASSWORD": "x"}
    s = Settings.from_env(base)
    assert (s.max_calls, s.ari_give_up_after, s.web_bind) == (500, None, "127.0.0.1:8090")
    s = Settings.from_env({**base, "PBX_MAX_CALLS": "0", "PBX_ARI_GIVE_UP_AFTER": "30"})
    assert (s.max_calls, s.ari_give_up_after) == (0, 30.0)
    with pytest.raises(SystemExit, match="PBX_MAX_CALLS='lots': not a number"):
        Settings.from_env({**base, "PBX_MAX_CALLS": "lots"})
    with pytest.raises(SystemExit, match="PBX_ARI_GIVE_UP_AFTER='-1': must not be negative"):
        Settings.from_env({**base, "PBX_ARI_GIVE_UP_AFTER": "-1"})
