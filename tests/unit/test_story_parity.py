"""One story, two transports: the same calls, the phones behaving the same way, through an ARI
engine on the fake Asterisk (pbx_app.testing) and through the FastAGI server driven by the fake
pbx_agi.conf (tests/support/fake_agi.py). The journals must agree event by event — everything but
ids and clock times — and read as the user would expect."""

from __future__ import annotations

import pytest

from pbx_app.agi.server import AgiServer
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted, MemoryJournal
from pbx_app.history.records import fold
from pbx_app.outbound.guard import screen
from pbx_app.policy.patterns import compile_pattern
from pbx_app.policy import parse_policy
from pbx_app.policy.model import OutboundSettings
from pbx_app.testing import FakeAsterisk
from tests.support.fake_agi import AgiDialplan
from tests.support.fake_calls import call_on_fake, engine_on

POLICY = parse_policy("""
site: {callback_route: "PJSIP/{number}@trunk"}
employees:
  "101": {name: Ivan, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: standard},
          on_busy: {action: forward, to: sales, announcement: none},
          on_unreachable: {action: drop, drop: message}}
  "102": {name: Petr, ring_time: 3}
  "103": {name: Anna}
  "104": {name: Olga, ring_time: 2, mailbox: "104@default", on_no_answer: {action: voicemail}}
  "107": {name: Pavel, ring_time: 2, on_no_answer: {action: callback, then: {action: voicemail}, retry_after: 60}}
departments:
  sales: {members: ["102", "103"], strategy: ringall, ring_time: 5}
""", "<parity>")


class Requests:
    """The callback store, every number allowed."""

    def __init__(self):
        self.requests = []

    async def vet(self, number, employee, call_id, reserve=False):
        return screen(OutboundSettings(allow=(compile_pattern("_X."),)), number)

    async def add(self, request):
        self.requests.append(request)
        return True

    def take(self, event: dict) -> bool:  # an ARI engine's callback service sees events first
        return False


def story(events) -> list[tuple]:
    """The journal without ids and clock times."""
    out = []
    for e in events:
        if isinstance(e, CallStarted):
            out.append(("started", e.caller, e.extension, e.reasons))
        elif isinstance(e, LegStarted):
            out.append(("leg", e.leg, e.role, e.targets, e.department))
        elif isinstance(e, LegEnded):
            out.append(("leg ended", e.leg, e.outcome, e.answered_by, e.answered_at is not None, e.cause))
        elif isinstance(e, CallEnded):
            out.append(("ended", e.result, e.detail))
    return out


# name: (extension, phones, talk_ends, voicemail, key, the call's end as history shows it)
CASES = {
    "answered at once": ("101", {"PJSIP/101": "answer"}, "callee", {}, "", ("answered", "answered by 101")),
    "no answer, the forward answered": ("101", {"PJSIP/102": "answer"}, "callee", {}, "", ("answered", "answered by 102")),
    "the caller hangs up after talking": ("101", {"PJSIP/102": "answer"}, "caller", {}, "", ("answered", "answered by 102")),
    "no answer anywhere": ("101", {}, "callee", {}, "", ("dropped", "busy")),
    "busy, the department answers": ("101", {"PJSIP/101": "busy", "PJSIP/103": "answer"}, "callee", {}, "",
                                     ("answered", "answered by 103")),
    "unreachable, the drop message": ("101", {"PJSIP/101": "unreachable"}, "callee", {}, "",
                                      ("dropped", "message, then hangup")),
    "voicemail with a message": ("104", {}, "callee", {"104@default": True}, "", ("voicemail", "message left")),
    "voicemail without a message": ("104", {}, "callee", {}, "", ("voicemail", "no message left")),
    "caller gone while it rings": ("101", {"PJSIP/101": "caller_leaves"}, "callee", {}, "",
                                   ("caller_hung_up", "the caller hung up")),
    "caller gone during the forward": ("101", {"PJSIP/102": "caller_leaves"}, "callee", {}, "",
                                       ("caller_hung_up", "the caller hung up")),
    "callback offer, 1 pressed": ("107", {}, "callee", {}, "1",
                                  ("callback_requested", "callback requested: 107 calls 79001234567 back")),
    "callback offer, nothing pressed": ("107", {}, "callee", {}, "", ("voicemail", "no message left")),
}


async def through_ari(extension, phones, talk_ends, voicemail, key) -> list[tuple]:
    fake = FakeAsterisk(phones=phones, talk_ends=talk_ends, voicemail=voicemail)
    fake.keys["*"] = key
    call = await call_on_fake(extension, POLICY, fake=fake, callbacks=Requests())
    return story(call.events)


async def through_agi(extension, phones, talk_ends, voicemail, key, servers: int = 1,
                      journal: MemoryJournal | None = None) -> list[tuple]:
    journal, listening = journal or MemoryJournal(), []
    try:
        for _ in range(servers):  # sharing one journal, as servers sharing one database do
            server = AgiServer(lambda: POLICY, journal, callbacks=Requests())
            listening.append(await server.serve("127.0.0.1", 0))
        dialplan = AgiDialplan([s.sockets[0].getsockname()[1] for s in listening], phones, talk_ends, voicemail, key)
        await dialplan.call(extension)
    finally:
        for s in listening:
            s.close()
    return story(journal.events)


def history(events) -> tuple:
    """The call as history folds it, without ids and clock times."""
    [call] = fold(events)
    legs = tuple((l.leg, l.role, l.targets, l.outcome, l.answered_by, l.cause) for l in call.legs)
    return (call.caller, call.extension, call.reasons, legs, call.result, call.detail)


@pytest.mark.parametrize("case", CASES)
async def test_both_transports_write_the_same_journal(case):
    extension, phones, talk_ends, voicemail, key, end = CASES[case]
    ari = await through_ari(extension, phones, talk_ends, voicemail, key)
    agi = await through_agi(extension, phones, talk_ends, voicemail, key)
    assert ari[-1] == ("ended", *end), ari
    assert agi == ari


async def test_a_forward_reads_as_the_user_sees_it():
    """Ivan does not answer, the caller hears the notice, Petr answers: three legs."""
    ari = await through_ari("101", {"PJSIP/102": "answer"}, "callee", {}, "")
    assert [e for e in ari if e[0] == "leg ended"] == [
        ("leg ended", 1, "no_answer", None, False, "NOANSWER,0"),
        ("leg ended", 2, "played", None, False, "sound:pbx_app/forward-notice"),
        ("leg ended", 3, "answered", "102", True, None)]


async def test_a_call_taken_over_mid_way_writes_the_same_journal():
    """ARI: the owner engine dies while the employee rings and a survivor goes on; FastAGI:
    every step is served by the other of two servers."""
    fake = FakeAsterisk(phones={"PJSIP/101": "rings", "PJSIP/102": "answer"})
    journal = MemoryJournal()
    a, b = (engine_on(fake, POLICY, f"pbx_app-{n}", journal=journal) for n in "ab")
    channel = fake.new_call("101")
    await fake.settle()
    fake.detach(fake.channels[channel].vars["PBX_ENGINE"])
    fake.ring_ends.set()
    await fake.settle()
    assert a.taken_over + b.taken_over == 1
    agi_journal = MemoryJournal()
    await through_agi("101", {"PJSIP/101": "no_answer", "PJSIP/102": "answer"}, "callee", {}, "", servers=2,
                      journal=agi_journal)
    # The survivor writes the call's start and the ring in progress again (the dead engine's spool
    # may never ship): the events differ by those, the history they fold into does not.
    assert history(agi_journal.events) == history(journal.events)
    assert history(journal.events)[-2:] == ("answered", "answered by 102")
