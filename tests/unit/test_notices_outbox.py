"""The notices' outbox in the journal's database, on SQLite and a real PostgreSQL: a finished
call becomes its notices exactly once however many notifiers look, a call in progress waits,
a late-shipped call is still found, and each notice is claimed by one sender at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from pbx_app.history.database import open_store
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.spool import Position
from pbx_app.notices.database import open_database
from pbx_app.notices.outbox import Outbox
from pbx_app.notices.scanner import Scanner
from pbx_app.policy import parse_policy
from tests.unit.test_journal_store import T0, at

POLICY = parse_policy("""
employees:
  "103": {name: Anna, email: anna@example.test}
  "105": {name: Sergei, email: sergei@example.test}
""", "<test>")


def missed(call_id: str, start: float, extension: str = "103", ended: bool = True) -> list:
    events = [CallStarted(call_id, at(start), "79001234567", extension, f"ch-{call_id}", (), channel_name=f"PJSIP/c-{call_id}"),
              LegStarted(call_id, 1, at(start + 0.1), "employee", (extension,))]
    if ended:
        events += [LegEnded(call_id, 1, at(start + 3), "no_answer"), CallEnded(call_id, at(start + 3.1), "dropped", "busy")]
    return events


def answered(call_id: str, start: float) -> list:
    return [CallStarted(call_id, at(start), "79001234567", "105", f"ch-{call_id}", ()),
            LegStarted(call_id, 1, at(start + 0.1), "employee", ("105",)),
            LegEnded(call_id, 1, at(start + 9), "answered", answered_by="105", answered_at=at(start + 2)),
            CallEnded(call_id, at(start + 9), "answered", "answered by 105")]


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return request.getfixturevalue("postgres_server").new_database("notices")


@pytest.fixture
async def journal(url):
    """ship(events): the events into the journal's tables, as an engine's shipper puts them."""
    store = open_store(url)
    shipped = [None]

    async def ship(events):
        end = Position(1, (shipped[0].offset if shipped[0] else 0) + 100)
        shipped[0] = await store.ship("spool", shipped[0], events, end)

    yield ship
    await store.close()


@pytest.fixture
async def outboxes(url):
    made: list[Outbox] = []

    def make() -> Outbox:
        made.append(Outbox(open_database(url)))
        return made[-1]

    yield make
    for outbox in made:
        await outbox.db.close()


def scanner(outbox: Outbox, batch: int = 50) -> Scanner:
    return Scanner(outbox, lambda: POLICY, webhook=True, max_age=24 * 3600, batch=batch)


async def first_start(outbox: Outbox) -> None:
    await outbox.enabled_since(T0 - timedelta(minutes=1))  # the notifier was set up before these calls


async def test_two_notifiers_make_each_notice_once(journal, outboxes):
    await journal(missed("m1", 0) + answered("a1", 1) + missed("m2", 2, "105"))
    one, two = outboxes(), outboxes()
    await first_start(one)
    now = at(60)
    seen = await asyncio.gather(scanner(one, batch=2).scan(now), scanner(two, batch=2).scan(now))
    assert sum(seen) >= 3
    rows = await one.journal()
    assert sorted((r["call_id"], r["kind"], r["recipient"], r["state"]) for r in rows) == [
        ("m1", "missed", "anna@example.test", "pending"), ("m1", "missed", "webhook", "pending"),
        ("m2", "missed", "sergei@example.test", "pending"), ("m2", "missed", "webhook", "pending")]
    assert await scanner(one).scan(at(70)) == 0, "nothing is looked at twice"


async def test_a_call_in_progress_waits_and_is_told_once_it_ends(journal, outboxes):
    outbox = outboxes()
    await first_start(outbox)
    look = scanner(outbox)
    await journal(missed("slow", 0, ended=False) + missed("quick", 10))
    assert await look.scan(at(30)) == 1
    assert look.cursor <= at(0), "the cursor stays behind the call still in progress"
    await journal([LegEnded("slow", 1, at(50), "no_answer"), CallEnded("slow", at(50), "dropped", "busy")])
    assert await look.scan(at(60)) == 1
    assert {r["call_id"] for r in await outbox.journal()} == {"slow", "quick"}


async def test_a_call_that_reaches_the_database_late_is_found_by_the_sweep(journal, outboxes):
    outbox = outboxes()
    await first_start(outbox)
    look = scanner(outbox)
    await journal(missed("on-time", 3000))
    assert await look.scan(at(3100)) == 1
    await journal(missed("late", 0))  # an engine whose database was away ships an old call now
    assert await look.scan(at(3110)) == 0, "a look reads only the recent calls"
    assert await look.scan(at(3110 + 301)) == 1, "the periodic sweep goes back the whole horizon"


async def test_calls_before_the_first_notifier_started_are_not_told(journal, outboxes):
    await journal(missed("old", 0))
    outbox = outboxes()
    await outbox.enabled_since(at(100))
    await journal(missed("new", 200))
    await scanner(outbox).scan(at(300))
    assert {r["call_id"] for r in await outbox.journal()} == {"new"}


async def test_each_notice_is_claimed_by_one_sender_until_its_lease_runs_out(journal, outboxes):
    await journal([e for i in range(10) for e in missed(f"c{i}", i)])
    one, two = outboxes(), outboxes()
    await first_start(one)
    await scanner(one).scan(at(60))
    now = at(61)
    a, b = await asyncio.gather(one.claim("A", now, 120, 10), two.claim("B", now, 120, 10))
    keys = lambda claimed: {(c.call_id, c.recipient) for c in claimed}  # noqa: E731
    assert len(keys(a)) == len(keys(b)) == 10 and not keys(a) & keys(b), "at the same moment, never the same notice"
    assert await one.claim("C", at(100), 120, 50) == [], "leased"
    for notice in a:
        assert await one.sent(notice, "A", at(102))
    again = await two.claim("C", at(61 + 121), 120, 50)
    assert keys(again) == keys(b), "B's lease ran out (B died): C takes them; A's sent ones never come back"
    assert not await two.sent(b[0], "B", at(200)), "B cannot journal a notice C now holds"


async def test_failed_notices_wait_for_their_retry_and_the_journal_says_why(journal, outboxes):
    await journal(missed("f1", 0))
    outbox = outboxes()
    await first_start(outbox)
    await scanner(outbox).scan(at(60))
    first, second = await outbox.claim("A", at(61), 120, 50)
    await outbox.failed(first, "A", "Connection refused", at(161))
    await outbox.failed(second, "A", "550 no such user", None)
    assert await outbox.claim("A", at(100), 120, 50) == []
    [retry] = await outbox.claim("A", at(162), 120, 50)
    assert (retry.recipient, retry.attempts) == (first.recipient, 1)
    rows = {r["recipient"]: r for r in await outbox.journal()}
    assert (rows[second.recipient]["state"], rows[second.recipient]["last_error"]) == ("given_up", "550 no such user")
    assert (rows[first.recipient]["state"], rows[first.recipient]["last_error"]) == ("failed", "Connection refused")
