"""Issue 24's toll-fraud guard on real calls (ARI mode), the carrier played by SIPp on 127.0.0.8:
a mobile the site's patterns do not allow is never dialled and the caller gets the plan's next
step; an employee's hourly limit of calls out reached, the next call rings the desk alone. Each
time the carrier receives no INVITE, and the call's reasons (what `pbx-app explain` shows) say
why; history says it too for the limit, which only the call can know."""

from __future__ import annotations

from dataclasses import replace

from pbx_app.history.events import CallStarted
from pbx_app.policy import parse_policy

from .test_history_calls import ended_call, journaled_app  # noqa: F401 (a fixture)
from .test_mobile_forward import CLIENT
from .test_outbound_guard import guarded  # noqa: F401 (a fixture)

POLICY = """
site:
  outbound:
    allow: [_7900XXXXXXX, _7901XXXXXXX]
    per_hour: {employee: 1}
    trunk: {endpoint: carrier-out}
employees:
  "101": {name: Ivan Petrov, ring_time: 2, mobile: "+7 901 555-01-01", ring_mobile: true,
          on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr Ivanov, ring_time: 5}
"""


def reasons(app) -> list[str]:
    return [r for e in app.journal.events if isinstance(e, CallStarted) for r in e.reasons]


async def test_a_mobile_outside_the_allowed_patterns_is_not_dialled_and_the_caller_goes_on(journaled_app, sip):
    # The site narrowed its patterns after the policy was checked (a Policy object: what `check`
    # would refuse now still reaches the engine): the call decides again, at the call.
    policy = parse_policy(POLICY, "<test policy>")
    narrowed = parse_policy(POLICY.replace(", _7901XXXXXXX", "").split("employees:")[0], "<site>").site.outbound
    app = await journaled_app(replace(policy, site=replace(policy.site, outbound=narrowed)))
    carrier = sip.carrier_out("ring_forever")
    desk = sip.phone("101", "ring_forever")
    colleague = sip.phone("102", "answer", answer_delay_ms=200)
    caller = sip.call("101", talk_ms=300, caller=CLIENT)
    assert await caller.wait(30) == 0
    _, row = await ended_call(app)
    assert (row.status, app.ended()[-1].detail) == ("answered", "answered by 102")
    assert desk.received("INVITE") and colleague.received("INVITE")
    assert carrier.messages == [], "nothing was dialled out"
    assert any("101's mobile is not rung: +7 901 555-01-01 (79015550101) is not allowed: matches none of "
               "site.outbound.allow" in r for r in reasons(app)), reasons(app)


async def test_the_hourly_limit_reached_the_next_call_rings_the_desk_alone(journaled_app, guarded, sip):  # noqa: F811
    app = await journaled_app(POLICY)
    guarded(app)
    carrier = sip.carrier_out("ring_forever")
    sip.phone("101", "answer", answer_delay_ms=1000)
    first = sip.call("101", talk_ms=200, caller=CLIENT)
    assert await first.wait(30) == 0
    await ended_call(app)
    assert carrier.received("INVITE") and carrier.received("CANCEL"), "the first call rang the mobile"
    await carrier.wait(10)

    carrier = sip.carrier_out("ring_forever")
    desk = sip.phone("101", "answer", answer_delay_ms=1000)
    second = sip.call("101", talk_ms=200, caller=CLIENT)
    assert await second.wait(30) == 0
    _, row = await ended_call(app, 2)
    assert row.status == "answered" and desk.received("INVITE")
    assert carrier.messages == [], "over the limit: nothing was dialled out"
    assert row.what_happened == "79015550101 not rung: the hour's limit of calls out is reached; answered"
    assert any("the outside leg to 79015550101 for 101 is dropped: the hour's limit of calls out for this employee "
               "is reached" in r for r in reasons(app)), reasons(app)
