"""Issue 24 on real calls: a ring reaching an employee's mobile through the carrier's trunk
(dialplan/pbx_external.conf), the carrier played by SIPp on 127.0.0.8 (pjsip.conf [carrier-out])
recording the INVITE it got. The policies here name the external leg as the employee's endpoint
(its Dial() string, pbx_app/routing/external_leg.py): what the routing decision puts in a ring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pbx_app.history.events import LegEnded
from pbx_app.routing.external_leg import ExternalLeg, dial_string
from tests.support.wait import until

from .conftest import leftovers
from .test_agi_calls import AGI_CALLER_IP, agi_app  # noqa: F401 (a fixture)
from .test_app_down import caller_channel, engines  # noqa: F401 (a fixture)
from .test_history_calls import cdr_of, ended_call, journaled_app, sqlite_rows  # noqa: F401 (a fixture)

MOBILE = "79005550101"
CLIENT = "555"  # short: the confirm prompt says it digit by digit


def mobile(**kw) -> str:
    """101's mobile as a ring target."""
    return dial_string(ExternalLeg(employee="101", digits=MOBILE, trunk="carrier-out", **kw))


def header(message, name: str) -> str:
    found = [line.split(":", 1)[1].strip() for line in message.text.splitlines()
             if line.lower().startswith(name.lower() + ":")]
    return found[0] if found else ""


def together(ring_time: int = 6, then: str = "", **kw) -> str:
    """101's desk and mobile ring together; ``then``: what follows when nobody takes the call."""
    rule = f", on_no_answer: {{action: forward, to: \"102\", announcement: none}}" if then else ""
    return f"""
employees:
  "101": {{name: Ivan Petrov, ring_time: {ring_time}, endpoint: "PJSIP/101&{mobile(**kw)}"{rule}}}
  "102": {{name: Petr Ivanov, ring_time: 5}}
"""


def mobile_only(ring_time: int, **kw) -> str:
    """101 forwards everything to the mobile; when it does not take the call, 102 rings."""
    return f"""
employees:
  "101": {{name: Ivan Petrov, ring_time: {ring_time}, endpoint: "{mobile(**kw)}",
          on_no_answer: {{action: forward, to: "102", announcement: none}}}}
  "102": {{name: Petr Ivanov, ring_time: 5}}
"""


@pytest.fixture
def confirm_timeout(asterisk):
    """The site's PBX_CONFIRM_TIMEOUT for one test (seconds to press 1 after the prompt)."""
    def put(seconds: int) -> None:
        asterisk("cli", f"dialplan set global PBX_CONFIRM_TIMEOUT {seconds}")
    yield put
    asterisk("cli", "dialplan set global PBX_CONFIRM_TIMEOUT 5")


async def test_ring_together_the_mobile_answers_and_presses_1(journaled_app, sip):
    app = await journaled_app(together())
    desk = sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("confirm", answer_delay_ms=300, key_after_ms=800)
    caller = sip.call("101", talk_ms=1500, caller=CLIENT)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert row.status == "answered"
    assert "Local/101*0*1*c*79005550101*carrier-out@pbx-external" in app.ended()[-1].detail

    # What the carrier got: the client's number, and 101 as the one who forwarded.
    [invite] = carrier.received("INVITE")
    assert invite.first_line.startswith(f"INVITE sip:{MOBILE}@127.0.0.8:5070 ")
    assert f"<sip:{CLIENT}@" in header(invite, "From") and f"<sip:{CLIENT}@" in header(invite, "P-Asserted-Identity")
    assert header(invite, "Diversion").startswith("<sip:101@") and "reason=follow-me" in header(invite, "Diversion")
    # The client is put through only once the key is in: not when the mobile picked up.
    [ack] = carrier.received("ACK")
    [client_answered] = caller.received(200)
    assert client_answered.at >= ack.at + timedelta(milliseconds=700)
    assert desk.received("CANCEL"), "the desk stopped ringing"
    desk_row, mobile_row = await cdr_of(started.channel_id, 2)
    assert (desk_row.dst, desk_row.disposition) == ("101", "NO ANSWER")
    assert (mobile_row.disposition, mobile_row.leg) == ("ANSWERED", ("1", "employee", "101"))
    assert mobile_row.dstchannel.startswith(f"Local/101*0*1*c*{MOBILE}*carrier-out@pbx-external-")
    assert mobile_row.billsec >= 1


async def test_ring_together_the_desk_answers_and_the_mobile_is_cancelled(journaled_app, sip):
    app = await journaled_app(together())
    desk = sip.phone("101", "answer", answer_delay_ms=1500)
    carrier = sip.carrier_out("ring_forever")
    caller = sip.call("101", talk_ms=1000, caller=CLIENT)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert row.status == "answered" and app.ended()[-1].detail.startswith("answered by PJSIP/101-")
    [invite] = carrier.received("INVITE")
    [cancel] = carrier.received("CANCEL")
    [desk_answered] = desk.sent(200)
    assert invite.at < desk_answered.at <= cancel.at
    rows = await cdr_of(started.channel_id, 2)
    assert sorted((r.dstchannel.split("/")[0], r.disposition) for r in rows) == [("Local", "NO ANSWER"),
                                                                                ("PJSIP", "ANSWERED")]


async def test_a_mobile_joining_later_is_never_called_when_the_desk_answers_first(journaled_app, sip):
    app = await journaled_app(together(delay=4))
    sip.phone("101", "answer", answer_delay_ms=1000)
    carrier = sip.carrier_out("ring_forever")
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(30) == 0
    _, row = await ended_call(app)
    assert row.status == "answered"
    assert carrier.messages == [], "no INVITE to the carrier within the mobile's 4 s delay"


async def test_a_mobile_joining_later_rings_after_its_delay(journaled_app, sip):
    app = await journaled_app(together(delay=2))
    desk = sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("confirm", answer_delay_ms=300, key_after_ms=300)
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(30) == 0
    [desk_invite] = desk.received("INVITE")
    [invite] = carrier.received("INVITE")
    assert 1.7 <= (invite.at - desk_invite.at).total_seconds() <= 3.5
    assert "reason=no-answer" in header(invite, "Diversion")
    _, row = await ended_call(app)
    assert row.status == "answered"


async def test_no_key_on_the_mobile_goes_on_to_the_next_step(journaled_app, sip, confirm_timeout):
    confirm_timeout(1)  # a voicemail answering: it says nothing and presses nothing
    app = await journaled_app(mobile_only(ring_time=15))
    carrier = sip.carrier_out("answer", answer_delay_ms=300)
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(40) == 0
    started, row = await ended_call(app)
    assert (row.status, app.ended()[-1].detail) == ("answered", "answered by 102")
    assert [e.outcome for e in app.journal.events if isinstance(e, LegEnded)] == ["no_answer", "answered"]
    [bye] = carrier.received("BYE")
    [colleague_invite] = colleague.received("INVITE")
    assert bye.at <= colleague_invite.at
    [client_answered] = caller.received(200)
    assert client_answered.at > colleague_invite.at, "the client was never put through to the voicemail"
    mobile_row, colleague_row = await cdr_of(started.channel_id, 2)
    assert (mobile_row.disposition, colleague_row.dst, colleague_row.disposition) == ("NO ANSWER", "102", "ANSWERED")


@pytest.mark.parametrize(("carrier_does", "outcome", "disposition"), [
    ("busy", "busy", "BUSY"), ("unavailable", "unreachable", "CONGESTION"), ("ring_forever", "no_answer", "NO ANSWER")])
async def test_the_carrier_refusing_or_not_answering_goes_on_to_the_next_step(journaled_app, sip, carrier_does, outcome,
                                                                               disposition):
    rules = ", ".join(f'{rule}: {{action: forward, to: "102", announcement: none}}'
                      for rule in ("on_no_answer", "on_busy", "on_unreachable"))
    app = await journaled_app(mobile_only(ring_time=2).replace('on_no_answer: {action: forward, to: "102", announcement: none}', rules))
    carrier = sip.carrier_out(carrier_does)
    colleague = sip.phone("102", "answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert (row.status, app.ended()[-1].detail) == ("answered", "answered by 102")
    assert carrier.received("INVITE") and colleague.received("INVITE")
    if carrier_does == "ring_forever":
        assert carrier.received("CANCEL"), "the mobile stopped ringing at 101's ring time"
    assert [e.outcome for e in app.journal.events if isinstance(e, LegEnded)] == [outcome, "answered"]
    mobile_row, colleague_row = await cdr_of(started.channel_id, 2)
    assert (mobile_row.disposition, colleague_row.disposition) == (disposition, "ANSWERED")


async def test_the_company_number_shown_to_a_carrier_that_wants_its_own(journaled_app, sip):
    app = await journaled_app(mobile_only(ring_time=5, present="74951234567", confirm=False))
    carrier = sip.carrier_out("answer", answer_delay_ms=300)
    caller = sip.call("101", talk_ms=500, caller=CLIENT)
    assert await caller.wait(30) == 0
    _, row = await ended_call(app)
    assert row.status == "answered"
    [invite] = carrier.received("INVITE")
    assert "<sip:74951234567@" in header(invite, "From") and CLIENT not in header(invite, "From")
    assert header(invite, "Diversion").startswith("<sip:101@")
    [ack] = carrier.received("ACK")
    [client_answered] = caller.received(200)
    assert client_answered.at - ack.at < timedelta(seconds=1), "no confirm asked: put through at once"


async def test_fastagi_mode_rings_the_mobile_with_the_desk(agi_app, sip):  # noqa: F811
    app = await agi_app(together())
    sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("confirm", answer_delay_ms=300, key_after_ms=500)
    caller = sip.call("101", talk_ms=1000, caller=CLIENT, source_ip=AGI_CALLER_IP)
    assert await caller.wait(30) == 0
    started, row = await ended_call(app)
    assert row.status == "answered"
    [invite] = carrier.received("INVITE")
    assert header(invite, "Diversion").startswith("<sip:101@")
    desk_row, mobile_row = await cdr_of(started.channel_id, 2)
    assert (desk_row.disposition, mobile_row.disposition) == ("NO ANSWER", "ANSWERED")


async def test_no_engine_the_dialplan_rings_the_mobile_with_the_desk(engines, ari, sip):  # noqa: F811
    Path(engines.base["PBX_POLICY"]).write_text(together(ring_time=4))
    plans = Path(engines.base["PBX_FALLBACK_DIR"])
    [engine] = await engines("a")
    await until(lambda: (plans / "101").exists(), 10, "the engine wrote no plan for 101")
    engine.stop()
    sip.phone("101", "ring_forever")
    carrier = sip.carrier_out("confirm", answer_delay_ms=300, key_after_ms=500)
    caller = sip.call("101", talk_ms=1000, caller=CLIENT)
    channel = await caller_channel(ari)
    assert await caller.wait(30) == 0
    assert carrier.received("INVITE") and caller.received(200)
    desk_row, mobile_row = await cdr_of(channel["id"], 2, read=sqlite_rows)
    assert (desk_row.disposition, mobile_row.disposition) == ("NO ANSWER", "ANSWERED")
    channels, _ = await leftovers(ari)
    assert not channels
