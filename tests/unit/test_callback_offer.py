"""The callback offer: the decision (pure), and the call flow on the fake Asterisk — the caller is
answered for the offer, pressing 1 stores a request and ends the call, anything else runs the
action's ``then``; an engine dying during the offer leaves the digit to another engine."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.callback import open_callbacks
from pbx_app.callback.ari_phones import AriPhones
from pbx_app.callback.service import CallbackService
from pbx_app.history.events import MemoryJournal
from pbx_app.history.rows import history_row
from pbx_app.policy import parse_policy
from pbx_app.policy.loader import analyse_policy
from pbx_app.routing import Drop, Ring
from pbx_app.routing.decide import CallContext, decide
from pbx_app.routing.explain import explain
from pbx_app.routing.plan import Offer
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import call_on_fake, call_over, engine_on

POLICY = """
site: {callback_route: "PJSIP/{number}@trunk"}
employees:
  "101":
    name: Ivan
    ring_time: 3
    on_no_answer: {action: callback, then: {action: forward, to: "102", announcement: none}, attempts: 2,
                   retry_after: 30, expires_after: 600, announcement: {file: offer-ivan}}
  "102": {name: Petr, ring_time: 5}
  "103": {name: Anna, on_no_answer: {action: callback, route: "PJSIP/{number}@other"}}
"""
AT = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
CLOCK = lambda: AT  # noqa: E731


def test_the_decision_puts_the_offer_before_the_then_action():
    plan = decide(parse_policy(POLICY), CallContext("101", "79001234567", AT))
    offer, ring, end = plan.on_no_answer
    assert offer == Offer(extension="101", endpoint="PJSIP/101", sound="sound:/var/lib/pbx_app/sounds/offer-ivan",
                          route="PJSIP/{number}@trunk", attempts=2, retry_after=30, expires_after=600)
    assert isinstance(ring, Ring) and ring.targets[0].extension == "102"
    assert end == Drop(kind="busy")
    anna = decide(parse_policy(POLICY), CallContext("103", "79001234567", AT))
    assert anna.on_no_answer == (Offer(extension="103", endpoint="PJSIP/103", sound="sound:pbx_app/callback-offer",
                                       route="PJSIP/{number}@other", attempts=3, retry_after=60, expires_after=3600),
                                 Drop(kind="busy"))


def test_a_callback_without_a_route_is_an_error():
    analysis = analyse_policy(POLICY.replace('site: {callback_route: "PJSIP/{number}@trunk"}', ""))
    [error] = analysis.errors
    assert error.line == 7 and "employees.101.on_no_answer: a callback needs 'route'" in error.message


@pytest.fixture
async def requests(tmp_path):
    store = open_callbacks(f"sqlite:///{tmp_path}/journal.db")
    yield store
    await store.close()


def service_on(fake, store, policy_text=POLICY):
    policy = parse_policy(policy_text)
    return CallbackService(AriPhones(fake), store, lambda: policy, MemoryJournal(), clock=CLOCK)


async def test_pressing_1_stores_the_request_and_ends_the_call(requests):
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer"})
    fake.keys["*"] = "1"
    call = await call_on_fake("101", POLICY, fake=fake, callbacks=service_on(fake, requests), clock=CLOCK)
    assert ("answer",) in call.actions, "the caller is answered to collect the digit"
    assert ("read", "/var/lib/pbx_app/sounds/offer-ivan", 5) in call.actions
    assert call.actions[-2:] == [("play", "pbx_app/callback-confirm"), ("hangup", "normal")]
    assert call.dials() == [(("PJSIP/101",), 3)], "102 is not rung: the client chose the callback"
    assert call.ended().result == "callback_requested"
    request = await requests.get(call.channel)
    assert (request.employee, request.endpoint, request.client, request.dial) == (
        "101", "PJSIP/101", "79001234567", "PJSIP/79001234567@trunk")
    assert (request.state, request.max_attempts, request.leg) == ("waiting", 2, 2)
    assert request.expires_at == AT + timedelta(seconds=600)
    assert request.next_try_at == AT + timedelta(seconds=30), "not answered: they are not rung again at once"
    row = history_row(call.record())
    assert (row.status, row.label) == ("missed", "Callback")
    assert row.what_happened == "no answer; callback requested; waiting for the callback"
    offer = call.record().leg(2)
    assert (offer.role, offer.outcome, offer.cause) == ("callback_offer", "callback_requested",
                                                        "answered for the offer; pressed 1")


async def test_a_busy_employee_is_called_back_as_soon_as_they_are_free(requests):
    fake = FakeAsterisk(phones={"PJSIP/101": "busy"})
    fake.keys["*"] = "1"
    call = await call_on_fake("101", POLICY, fake=fake, callbacks=service_on(fake, requests), clock=CLOCK)
    assert (await requests.get(call.channel)).next_try_at == AT


@pytest.mark.parametrize("key, outcome", [("", "no_digit"), ("5", "declined")])
async def test_anything_but_1_runs_the_then_action(requests, key, outcome):
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    fake.keys["*"] = key
    call = await call_on_fake("101", POLICY, fake=fake, callbacks=service_on(fake, requests), clock=CLOCK)
    assert call.dials() == [(("PJSIP/101",), 3), (("PJSIP/102",), 5)]
    assert call.ended().detail == "answered by 102"
    assert call.record().leg(2).outcome == outcome
    assert await requests.get(call.channel) is None
    assert history_row(call.record()).what_happened == "no answer; callback offered, not taken; forwarded to 102, answered by 102"


async def test_without_a_request_store_there_is_no_offer():
    call = await call_on_fake("101", POLICY, phones={"PJSIP/101": "no_answer", "PJSIP/102": "no_answer"})
    assert ("answer",) not in call.actions
    assert call.dials() == [(("PJSIP/101",), 3), (("PJSIP/102",), 5)]


async def test_an_engine_dying_during_the_offer_leaves_the_digit_to_another(requests):
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer"})
    fake.keys["*"] = "1"
    fake.offer_held = asyncio.Event()
    a = engine_on(fake, POLICY, app="pbx_app-a", callbacks=service_on(fake.client("pbx_app-a"), requests), clock=CLOCK)
    channel = fake.new_call("101")
    await fake.settle()
    assert ("answer",) in fake.actions_for(channel)
    fake.detach("pbx_app-a")
    for task in list(a.tasks):
        task.cancel()
    b = engine_on(fake, POLICY, app="pbx_app-b", callbacks=service_on(fake.client("pbx_app-b"), requests), clock=CLOCK)
    fake.offer_held.set()
    await call_over(fake, b, channel)
    assert b.taken_over == 1
    assert fake.actions_for(channel)[-2:] == [("play", "pbx_app/callback-confirm"), ("hangup", "normal")]
    request = await requests.get(channel)
    assert request is not None and request.leg == 2


def test_explain_says_the_caller_is_answered_for_the_offer():
    policy = parse_policy(POLICY)
    plan = decide(policy, CallContext("101", "79001234567", AT))
    text = explain(policy, plan, "79001234567", AT)
    assert "no answer: 101's own setting (offer a callback (press 1), else forward to 102)" in text
    assert ("2. Answer the caller and play the announcement /var/lib/pbx_app/sounds/offer-ivan; they have 5 s to "
            "press 1. Pressed 1: \"we will call you back\", the call ends, and when 101 (Ivan) is free") in text
    assert "3. Ring 102 (Petr) on PJSIP/102 for 5 s." in text
