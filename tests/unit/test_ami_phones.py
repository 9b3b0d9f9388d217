"""The callback service over AMI (pbx_app/ami/phones.py) against a scripted Asterisk: the AMI
events of a callback as the test bed sends them (OriginateResponse, UserEvent, DialEnd, Hangup)
make the same story and request outcome as the ARI engines' (test_callback_service.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from panoramisk.message import Message

from pbx_app.ami import AmiError, AmiPhones, AmiRefused
from pbx_app.callback import open_callbacks
from pbx_app.callback.service import CallbackService
from pbx_app.history.events import LegEnded, MemoryJournal

from .test_callback_service import POLICY, T0, Clock, request


def event(**fields) -> Message:
    return Message(fields)


class ScriptedAmi:
    """``script``: what Asterisk reports after the Originate, as (event fields) with the
    channel's id filled in; ``states``: DEVICE_STATE() per endpoint; ``down``: no answers."""

    def __init__(self, script, states=None, down=False):
        self.script, self.states, self.down = script, states or {}, down
        self.sent: list[dict] = []
        self.deliver = lambda e: None

    async def action(self, fields: dict, timeout=None) -> Message:
        if self.down:
            raise AmiError("AMI pbx_app@127.0.0.1:5038 is down")
        self.sent.append(fields)
        if fields["Action"] == "Getvar":
            if "Channel" in fields:
                raise AmiRefused("No such channel")
            return Message({"Response": "Success", "Value": self.states.get(fields["Variable"], "NOT_INUSE")})
        channel = fields["ChannelId"]
        loop = asyncio.get_running_loop()
        for n, fields_ in enumerate(self.script):
            message = event(**{k: (v.replace("$ch", channel) if isinstance(v, str) else v) for k, v in fields_.items()})
            loop.call_later(0.01 * (n + 1), lambda m=message: [self.deliver(e) for e in AmiPhones.translate(m)])
        return Message({"Response": "Success", "Message": "Originate successfully queued"})


ANSWERED = [
    {"Event": "OriginateResponse", "ActionID": "$ch", "Response": "Success", "Reason": "4", "Uniqueid": "$ch"},
    {"Event": "UserEvent", "UserEvent": "PBX", "Uniqueid": "$ch", "cb_pressed": "1"},
    {"Event": "DialEnd", "DestUniqueid": "$ch", "DialStatus": "ANSWER"},  # the Originate's own dial: not the client
    {"Event": "DialEnd", "Uniqueid": "$ch", "DestUniqueid": "1.2", "DialStatus": "ANSWER"},
    {"Event": "UserEvent", "UserEvent": "PBX", "Uniqueid": "$ch", "cb_client": "ANSWER"},
    {"Event": "Hangup", "Uniqueid": "$ch", "Cause": "16"},
]


@pytest.fixture
async def store(tmp_path):
    s = open_callbacks(f"sqlite:///{tmp_path}/journal.db")
    yield s
    await s.close()


def make(store, ami):
    phones = AmiPhones(ami, "agi-test")
    service = CallbackService(phones, store, lambda: POLICY, MemoryJournal(), clock=Clock())
    ami.deliver = service.deliver
    return service


async def round_(service):
    await service.tick()
    await service.drain(3)


async def test_over_ami_the_employee_and_the_client_answer_and_the_request_is_done(store):
    ami = ScriptedAmi(ANSWERED)
    service = make(store, ami)
    await store.add(request())
    await round_(service)
    [originate] = [a for a in ami.sent if a["Action"] == "Originate"]
    assert originate["Channel"] == "PJSIP/101" and originate["Context"] == "pbx-callback"
    assert originate["Exten"] == "79001234567" and originate["ActionID"] == originate["ChannelId"]
    assert "PBX_CB_DIAL=PJSIP/79001234567@trunk" in originate["Variable"]
    assert 'PBX_CB_CALLERID="Ivan" <101>' in originate["Variable"]
    done = await store.get("c1")
    assert (done.state, done.answered_by, done.attempts) == ("done", "101", 1)
    assert [e.outcome for e in service.journal.events if isinstance(e, LegEnded)] == ["answered", "answered"]


@pytest.mark.parametrize("reason, outcome", [("3", "employee_no_answer"), ("5", "employee_busy"), ("0", "employee_unreachable")])
async def test_over_ami_a_failed_originate_keeps_the_request_waiting(store, reason, outcome):
    ami = ScriptedAmi([{"Event": "OriginateResponse", "ActionID": "$ch", "Response": "Failure", "Reason": reason}])
    service = make(store, ami)
    await store.add(request())
    await round_(service)
    r = await store.get("c1")
    assert (r.state, r.attempts, r.next_try_at) == ("waiting", 0, T0 + timedelta(seconds=60))
    assert [e.outcome for e in service.journal.events if isinstance(e, LegEnded)] == [outcome]


async def test_over_ami_a_press_reported_before_the_answer_is_not_lost(store):
    ami = ScriptedAmi([ANSWERED[1], ANSWERED[0], *ANSWERED[2:]])
    service = make(store, ami)
    await store.add(request())
    await round_(service)
    assert (await store.get("c1")).state == "done"


async def test_with_ami_down_nobody_is_called_and_the_request_waits(store):
    ami = ScriptedAmi(ANSWERED, down=True)
    service = make(store, ami)
    await store.add(request())
    await round_(service)
    r = await store.get("c1")
    assert (r.state, r.lease_owner) == ("waiting", None), "not claimed while the phone's state is unknown"
    ami.down = False
    await round_(service)
    assert (await store.get("c1")).state == "done"


async def test_a_phone_in_use_is_not_called_and_going_idle_wakes_the_service(store):
    ami = ScriptedAmi(ANSWERED, states={"DEVICE_STATE(PJSIP/101)": "INUSE"})
    service = make(store, ami)
    await store.add(request())
    await round_(service)
    assert not [a for a in ami.sent if a["Action"] == "Originate"]
    service.wake.clear()
    for e in AmiPhones.translate(event(Event="DeviceStateChange", Device="PJSIP/101", State="NOT_INUSE")):
        service.deliver(e)
    assert service.wake.is_set()
