"""The toll-fraud guard (issue 31): number patterns (pure), `check`'s word on them with
file:line:column, the hourly limits shared through the journal's database, and the callback
offer on the fake Asterisk — a hidden or premium number gets no offer, the limit stops the rest,
a second press of 1 from a waiting number adds nothing."""

import asyncio
import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.callback.ari_phones import AriPhones
from pbx_app.callback import open_callbacks
from pbx_app.cli import main
from pbx_app.callback.service import CallbackService
from pbx_app.history.events import MemoryJournal
from pbx_app.db.errors import StoreError
from pbx_app.notices.admin import AdminNotices
from pbx_app.notices.database import open_database
from pbx_app.notices.message import compose
from pbx_app.notices.outbox import Outbox
from pbx_app.notices.webhook import payload
from pbx_app.history.rows import history_row
from pbx_app.outbound.guard import OutboundGuard, screen
from pbx_app.policy.patterns import PatternError, compile_pattern
from pbx_app.outbound.limits import OutboundCall, Quota
from pbx_app.outbound.stores import open_limits
from pbx_app.policy import parse_policy
from pbx_app.policy.loader import analyse_policy
from pbx_app.testing import FakeAsterisk
from tests.support.fake_calls import FakeCall, call_over, engine_on

AT = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
CALL_IDS = itertools.count(1)
POLICY = """
site:
  callback_route: "PJSIP/{number}@trunk"
  outbound:
    allow: [_79XXXXXXXXX, "_7 [348]XX XXX-XX-XX"]
    deny: [_7809XXXXXXX]
    per_hour: {number: 2, employee: 4, site: 3}
employees:
  "101":
    name: Ivan
    ring_time: 3
    on_no_answer: {action: callback, then: {action: drop, drop: busy}}
  "102": {name: Petr, on_no_answer: {action: callback}}
"""


@pytest.mark.parametrize("pattern, number, matches", [
    ("_79XXXXXXXXX", "79001234567", True),
    ("_79XXXXXXXXX", "7900123456", False),
    ("_79XXXXXXXXX", "790012345678", False),
    ("_7 [348]XX XXX-XX-XX", "74951234567", True),
    ("_7[348]XXXXXXXXX", "75951234567", False),
    ("_8N.", "82", False),
    ("_8N.", "823", True),
    ("_8N!", "82", True),
    ("79001234567", "79001234567", True),
])
def test_patterns_are_asterisks_on_digits(pattern, number, matches):
    assert compile_pattern(pattern).matches(number) is matches


@pytest.mark.parametrize("pattern, said, column", [
    ("_+79XXXXXXXXX", "leave the '+' out", 2),
    ("_79XXXXXXXXY", "'Y' is not a digit", 12),
    ("_7[9-1]XX", "range 9-1, which holds no digit", 4),
    ("_7[]XX", "[] holds no digit", 3),
    ("_79XXXXXXXXXXXXXXX", "no number has more than 15", 1),
    ("_7.X", "'.' stands for the rest of the number and must come last", 3),
])
def test_a_pattern_that_matches_nothing_says_why_and_where(pattern, said, column):
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    assert said in str(caught.value) and caught.value.column == column


def test_check_explains_patterns_that_match_nothing_or_everything():
    text = POLICY.replace('deny: [_7809XXXXXXX]', 'deny: [_7809XXXXXXX, "+7 495"]').replace(
        "allow: [_79XXXXXXXXX,", "allow: [_X., _79XXXXXXXXX,")
    analysis = analyse_policy(text, "policy.yaml")
    [error] = analysis.errors
    assert str(error) == ("policy.yaml:6:26: site.outbound.deny[1]: '+7 495' matches nothing: numbers are compared by "
                          "their digits only; leave the '+' out (character 1 of the pattern)")
    [wide] = [w for w in analysis.warnings if "allow[0]" in w.message]
    assert (wide.line, wide.column) == (5, 13)
    assert "'_X.' matches every number of 2 digits or more, premium-rate and international ones included" in wide.message


def test_with_no_patterns_nothing_is_dialled_and_check_says_so():
    analysis = analyse_policy(POLICY.replace("    allow: [_79XXXXXXXXX, \"_7 [348]XX XXX-XX-XX\"]\n", ""), "p.yaml")
    assert analysis.ok
    [warning] = [w for w in analysis.warnings if "lists no number patterns" in w.message]
    assert str(warning) == ("p.yaml:4:3: site.outbound: site.outbound.allow lists no number patterns, so nothing external "
                            "is dialled and no callback is offered (e.g. allow: [_79XXXXXXXXX])")
    nothing = analyse_policy('employees: {"101": {on_no_answer: {action: callback, route: "PJSIP/{number}@t"}}}', "q.yaml")
    assert [str(w) for w in nothing.warnings] == [
        "q.yaml:1:21: employees.101.on_no_answer: site.outbound.allow lists no number patterns, so nothing external "
        "is dialled and no callback is offered (e.g. allow: [_79XXXXXXXXX])"]
    assert screen(parse_policy("{}").site.outbound, "79001234567").reason == "no_patterns"


@pytest.mark.parametrize("caller, reason", [
    ("79001234567", None), ("+7 (495) 123-45-67", None), ("78091234567", "denied"), ("882161234567", "not_allowed"),
    ("", "hidden"), ("anonymous", "hidden"), ("Restricted", "hidden"),
])
def test_screen(caller, reason):
    assert screen(parse_policy(POLICY).site.outbound, caller).reason == reason


class Told:
    def __init__(self):
        self.texts = []

    async def __call__(self, text):
        self.texts.append(text)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return request.getfixturevalue("postgres_server").new_database("outbound")


async def test_limits_per_number_and_per_site_are_shared_by_engines_and_told_once(database_url):
    policy = parse_policy(POLICY)
    url = database_url
    stores = [open_limits(url), open_limits(url)]
    told, refused = Told(), []
    clock = [AT]
    a, b = (OutboundGuard(s, lambda: clock[0], refused.append, told) for s in stores)
    try:
        assert (await a.check(policy, "79001234567", "101", "callback", "c1", reserve=True)).allowed
        assert (await b.check(policy, "79001234567", "101", "callback", "c2", reserve=True)).allowed
        over = await a.check(policy, "79001234567", "101", "callback", "c3", reserve=True)
        assert over.reason == "number_limit" and "calls to this number" in over.why
        assert (await b.check(policy, "79007654321", "102", "callback", "c4", reserve=True)).allowed
        for guard, ref in ((a, "c5"), (b, "c6"), (a, "c7")):
            assert (await guard.check(policy, "79000000001", "102", "callback", ref, reserve=True)).reason == "site_limit"
        assert refused == ["number_limit", "site_limit", "site_limit", "site_limit"]
        assert len(told.texts) == 1 and "limit of 3 calls out an hour" in told.texts[0], "one notice, not one per call"
        # A callback's reservation covers its own first dial.
        assert (await a.check(policy, "79007654321", "102", "callback", "c4", spare=1)).allowed
        clock[0] = AT + timedelta(hours=1, seconds=1)  # the hour is over: the counts are
        assert (await a.check(policy, "79001234567", "101", "callback", "c8", reserve=True)).allowed
    finally:
        for s in stores:
            await s.close()


class Unreachable:
    async def take(self, *args, **kw):
        raise StoreError("PostgreSQL: connection refused")

    async def close(self):
        pass


async def test_the_database_out_of_reach_refuses():
    refused = []
    verdict = await OutboundGuard(Unreachable(), refused=refused.append).check(
        parse_policy(POLICY), "79001234567", "101", "callback", "c1", reserve=True)
    assert verdict.reason == "store_down" and refused == ["store_down"]


@pytest.fixture
async def parts(tmp_path):
    url = f"sqlite:///{tmp_path}/journal.db"
    requests, limits = open_callbacks(url), open_limits(url)
    yield requests, limits
    await requests.close()
    await limits.close()


async def call_from(caller, parts, policy_text=POLICY, key="1"):
    requests, limits = parts
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer"})
    fake._ids = CALL_IDS  # each call its own id, as in Asterisk: the requests are keyed by it
    fake.keys["*"] = key
    policy = parse_policy(policy_text)
    service = CallbackService(AriPhones(fake), requests, lambda: policy, MemoryJournal(), clock=lambda: AT,
                              guard=OutboundGuard(limits, lambda: AT))
    engine = engine_on(fake, policy_text, callbacks=service, clock=lambda: AT)
    channel = fake.new_call("101", caller=caller)
    await call_over(fake, engine, channel)
    return FakeCall(fake, engine, channel)


@pytest.mark.parametrize("caller, said", [
    ("anonymous", "no answer; no callback offer: the number is hidden; busy tone"),
    ("", "no answer; no callback offer: the number is hidden; busy tone"),
    ("78091234567", "no answer; no callback offer: the number is not allowed; busy tone"),
    ("4420712345678", "no answer; no callback offer: the number is not allowed; busy tone"),
])
async def test_no_offer_to_a_hidden_or_not_allowed_number(parts, caller, said):
    call = await call_from(caller, parts)
    assert ("answer",) not in call.actions, "not answered for an offer"
    assert call.ended().result == "dropped"
    assert await parts[0].get(call.channel) is None
    assert history_row(call.record()).what_happened == said


async def test_a_second_press_from_a_waiting_number_adds_nothing_and_the_site_limit_stops_offers(parts):
    first = await call_from("79001234567", parts)
    again = await call_from("+7 900 123-45-67", parts)
    assert (await parts[0].get(first.channel)).state == "waiting"
    assert await parts[0].get(again.channel) is None, "one pending request per number"
    assert len(await parts[0].open(AT)) == 1
    assert again.ended().result == "callback_requested", "they are called back (by the first request)"
    assert history_row(again.record()).what_happened == ("no answer; callback requested (one was already waiting); "
                                                         "waiting for the callback")
    await call_from("79001110000", parts)  # the site's third call out this hour
    stopped = await call_from("79002220000", parts)
    assert ("answer",) not in stopped.actions
    assert history_row(stopped.record()).what_happened == "no answer; no callback: too many calls out this hour; busy tone"


async def test_the_site_limit_notice_goes_to_the_administrators_and_the_webhook(tmp_path):
    policy = parse_policy(POLICY.replace("    per_hour:", "    notify: [IT@example.com]\n    per_hour:"))
    db = open_database(f"sqlite:///{tmp_path}/journal.db")
    try:
        await AdminNotices(db, lambda: policy, webhook=True).outbound_limit("the site's limit … is reached")
        rows = await Outbox(db).journal()
    finally:
        await db.close()
    assert sorted((r["kind"], r["recipient"], r["state"]) for r in rows) == [
        ("outbound_limit", "it@example.com", "pending"), ("outbound_limit", "webhook", "pending")]
    facts = json.loads(rows[0]["facts"])
    mail = compose("n1", "outbound_limit", "it@example.com", "ru", facts, "pbx@example.com")
    assert mail["Subject"] == "Исходящие звонки остановлены: достигнут часовой лимит"
    assert "3 исходящих звонков в час" in mail.get_content()
    assert payload("outbound_limit", facts, "en")["detail"] == "the site's limit … is reached"


@pytest.mark.parametrize("caller, said", [
    ("+7 900 123-45-67", "Callback offer to +7 900 123-45-67: made while the hour's calls out are within site.outbound.per_hour."),
    ("78091234567", "Callback offer to 78091234567: not made (the number matches site.outbound.deny): the fallback runs at once."),
])
def test_explain_says_whether_this_caller_would_be_offered_a_callback(tmp_path, capsys, caller, said):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert main(["explain", "101", "--caller", caller, "--policy", str(path), "--offline"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == said


def test_check_warns_when_the_attempts_need_more_calls_than_the_number_limit():
    text = POLICY.replace("then: {action: drop, drop: busy}}", "then: {action: drop, drop: busy}, attempts: 5, retry_after: 60}")
    warnings = [str(w) for w in analyse_policy(text, "p.yaml").warnings if "attempts" in w.message]
    assert warnings[0] == ("p.yaml:12:5: employees.101.on_no_answer: 5 attempts 60 s apart are more calls to one number "
                            "than site.outbound.per_hour.number (2) lets through in an hour; the later ones wait for the "
                            "hour to pass")
    assert warnings[1].startswith("p.yaml:13:23: employees.102.on_no_answer: 3 attempts"), "the default 3 > 2 too"


async def test_engines_taking_places_at_once_never_pass_the_site_limit(database_url):
    stores = [open_limits(database_url), open_limits(database_url)]
    try:
        calls = [OutboundCall(f"7900000{i:04d}", f"10{i % 3}", "callback", f"c{i}") for i in range(12)]
        taken = await asyncio.gather(*(stores[i % 2].take(c, Quota(9, 9, 3), AT) for i, c in enumerate(calls)))
        assert taken.count(None) == 3 and set(taken) == {None, "site_limit"}
    finally:
        for s in stores:
            await s.close()
