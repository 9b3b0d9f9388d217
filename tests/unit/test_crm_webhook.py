"""The CRM webhook against a real local HTTP server that answers well, slowly, not at all, or
garbage. Whatever it does, a call is never held past the deadline and the profile decides."""

import asyncio
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx_app.crm import CrmAnswer, CrmDirectory, WebhookClient, lookup
from pbx_app.history.events import CallStarted, MemoryJournal
from pbx_app.policy import parse_policy
from tests.support.fake_calls import call_on_fake
from tests.support.net import free_port

POLICY = """
employees:
  "101": {ring_time: 5, on_no_answer: {action: forward, to: "102"}}
  "102": {ring_time: 5}
  "103": {ring_time: 5}
departments:
  sales: {members: ["102", "103"]}
crm:
  clients:
    "79000000009": {manager: "102"}
  webhook: {url: "URL", timeout_ms: 300, cache_seconds: 60}
"""


class Crm:
    """A CRM that answers each request with what the test tells it to."""

    def __init__(self):
        self.requests: list[web.Request] = []
        self.status = 200
        self.body: bytes = b"{}"
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")

    def answers(self, value, status=200):
        self.body = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.status = status


@pytest.fixture
async def crm():
    fake = Crm()
    app = web.Application()
    app.router.add_get("/client", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/client"))
    yield fake
    await server.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
async def client():
    clock = Clock()
    c = WebhookClient(clock=clock)
    c.test_clock = clock
    yield c
    await c.close()


def policy_for(url):
    return parse_policy(POLICY.replace("URL", url))


async def ask(client, policy, caller="79001234567") -> CrmAnswer:
    return await client.answer(policy.crm.webhook, policy, caller)


async def test_a_good_answer_is_a_rule(crm, client):
    crm.answers({"manager": "103", "on_no_answer": {"action": "forward", "to": "sales", "announcement": "none"}})
    answer = await ask(client, policy_for(crm.url), "+7 (900) 123-45-67")
    assert answer.rule.manager == "103" and answer.rule.source == "webhook"
    assert (answer.rule.on_no_answer.kind, answer.rule.on_no_answer.target) == ("forward", "sales")
    assert answer.rule.on_no_answer.announcement.kind == "none"
    assert not answer.fallback
    assert crm.requests[0].query["caller"] == "79001234567", "the number is sent as digits"


async def test_answers_are_cached_for_cache_seconds(crm, client):
    crm.answers({"manager": "103"})
    policy = policy_for(crm.url)
    for _ in range(3):
        assert (await ask(client, policy)).rule.manager == "103"
    assert len(crm.requests) == 1
    client.test_clock.now += 61
    crm.answers({"manager": "102"})
    assert (await ask(client, policy)).rule.manager == "102"
    assert len(crm.requests) == 2


async def test_no_rule_answers(crm, client):
    policy = policy_for(crm.url)
    for body, status in (({}, 200), ({"manager": None}, 200), ({"error": "not found"}, 404)):
        crm.answers(body, status)
        answer = await ask(client, policy, f"7900{status}{len(crm.requests)}")
        assert answer.rule is None and not answer.fallback, body
        assert "CRM webhook: no rule for" in answer.note


async def test_a_slow_crm_is_abandoned_at_the_deadline(crm, client):
    crm.delay = 5.0
    crm.answers({"manager": "103"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await ask(client, policy_for(crm.url))
    waited = loop.time() - started
    assert answer.rule is None and answer.fallback
    assert answer.note == "CRM webhook did not answer within 300 ms: the employee's profile decides"
    assert waited < 2.0, f"held the call {waited:.1f} s for a CRM that takes 5 s"


async def test_a_crm_that_is_down(client):
    port = free_port()  # nothing listens there
    answer = await ask(client, policy_for(f"http://127.0.0.1:{port}/client"))
    assert answer.fallback and answer.rule is None
    assert f"CRM webhook is unreachable (cannot connect to 127.0.0.1:{port})" in answer.note


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"<html>oops</html>", 200, "answered something that is not JSON"),
        (b'{"manager": "103"', 200, "answered something that is not JSON"),
        (b"[1, 2]", 200, "unusable rule (expected a JSON object, got list)"),
        ({"manager": "999"}, 200, "unknown extension '999'"),
        ({"manager": ["103"]}, 200, "expected a string"),
        ({"manager": "103", "on_no_answer": {"action": "teleport"}}, 200, "'teleport' is not one of drop, forward, voicemail"),
        ({"manager": "103", "on_no_answer": {"action": "forward", "to": "nobody"}}, 200, "unknown extension or department 'nobody'"),
        ({"manager": "103"}, 500, "answered HTTP 500"),
    ],
)
async def test_garbage_falls_back_and_is_not_cached(crm, client, body, status, words):
    crm.answers(body, status)
    policy = policy_for(crm.url)
    answer = await ask(client, policy)
    assert answer.fallback and answer.rule is None
    assert words in answer.note and answer.note.endswith("the employee's profile decides")
    await ask(client, policy)
    assert len(crm.requests) == 2, "a bad answer is asked again next time"


async def test_token_file_is_sent(crm, client, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    crm.answers({"manager": "103"})
    text = POLICY.replace("URL", crm.url).replace("cache_seconds: 60}", f"cache_seconds: 60, token_file: {tmp_path / 'token'}}}")
    await ask(client, parse_policy(text))
    assert crm.requests[0].headers["Authorization"] == "Bearer s3cret"


async def test_directory_prefers_the_static_mapping(crm):
    crm.answers({"manager": "103"})
    directory = CrmDirectory()
    try:
        answer = await directory.lookup(policy_for(crm.url), "79000000009")
        assert answer.rule.manager == "102" and "static mapping" in answer.rule.source
        assert crm.requests == []
        assert (await directory.lookup(policy_for(crm.url), "79000000001")).rule.manager == "103"
    finally:
        await directory.close()


async def test_directory_logs_a_fallback_once_in_a_while(crm, caplog):
    crm.answers(b"nonsense")
    directory = CrmDirectory()
    try:
        with caplog.at_level(logging.WARNING, logger="pbx_app.crm"):
            for i in range(5):
                await directory.lookup(policy_for(crm.url), f"7900000000{i}")
    finally:
        await directory.close()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("pbx_app.crm")]
    assert len(logged) == 1 and "answered something that is not JSON" in logged[0]


async def test_any_provider_is_held_to_the_deadline():
    class Hangs:
        async def lookup(self, policy, caller):
            await asyncio.sleep(30)

    policy = parse_policy('crm: {webhook: {url: "http://127.0.0.1:9/", timeout_ms: 100}}')
    answer = await asyncio.wait_for(lookup(Hangs(), policy, "1"), 2)
    assert answer.fallback and "no answer within 150 ms" in answer.note


async def call_101(policy, journal=None) -> list[tuple]:
    """A client calls 101 through the whole app with the real CRM directory; 101 does not
    answer, everyone else does. Returns the Dial() targets in order."""
    directory = CrmDirectory()
    try:
        call = await call_on_fake("101", policy, {"PJSIP/101": "no_answer", "PJSIP/102": "answer", "PJSIP/103": "answer"},
                                  journal=journal or MemoryJournal(), crm=directory)
    finally:
        await directory.close()
    return [d[0] for d in call.dials()]


async def test_a_call_with_a_slow_crm_follows_the_profile(crm):
    """The whole app: the CRM would say 103 but answers too late; 101's own forward to 102 runs."""
    crm.delay = 3.0
    crm.answers({"manager": "103"})
    policy = policy_for(crm.url)
    journal = MemoryJournal()
    dialled = await call_101(policy, journal)
    assert dialled == [("PJSIP/101",), ("PJSIP/102",)]
    [started] = [e for e in journal.events if isinstance(e, CallStarted)]
    assert "CRM webhook did not answer within 300 ms: the employee's profile decides" in started.reasons


async def test_a_call_with_a_crm_rule_goes_to_the_responsible_manager(crm):
    crm.answers({"manager": "103"})
    policy = policy_for(crm.url)
    assert await call_101(policy) == [("PJSIP/101",), ("PJSIP/103",)]
