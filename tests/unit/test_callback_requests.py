"""Callback requests in the journal's database (SQLite and a real PostgreSQL): one engine wins a
claim, a lease that runs out frees the request for another, an employee's requests go one at a
time, and a request past its time expires once."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.callback import CallbackRequest, open_callbacks

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)


def request(call_id="1795941604.2", employee="101", at=T0, **kw) -> CallbackRequest:
    values = dict(id=call_id, employee=employee, endpoint=f"PJSIP/{employee}", client="79001234567",
                  route="PJSIP/{number}@clients", requested_at=at, expires_at=at + timedelta(hours=1), next_try_at=at,
                  max_attempts=3, retry_after=60, leg=2)
    values.update(kw)
    return CallbackRequest(**values)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/journal.db"
    else:
        url = request.getfixturevalue("postgres_server").new_database("callbacks")
    s = open_callbacks(url)
    yield s
    await s.close()


async def test_a_request_is_stored_once_and_listed_oldest_first(store):
    await store.add(request("b", at=T0 + timedelta(seconds=5), client="79007654321"))
    await store.add(request("a", at=T0))
    await store.add(request("a", at=T0, client="111"))  # the same call asking twice: still one request
    listed = await store.open(T0 + timedelta(seconds=10))
    assert [r.id for r in listed] == ["a", "b"]
    assert listed[0].client == "79001234567" and listed[0].dial == "PJSIP/79001234567@clients"
    assert listed[0].requested_at == T0


async def test_one_pending_request_per_number_until_it_is_over(store):
    assert await store.add(request("first"))
    assert not await store.add(request("second", employee="102")), "the same number waits already"
    assert [r.id for r in await store.open(T0)] == ["first"]
    [r] = await store.open(T0)
    now = T0 + timedelta(seconds=1)
    await store.claim(r, "a", now, now + timedelta(seconds=30))
    assert not await store.add(request("third")), "… or is being called back"
    assert await store.finish(r.id, "a", "done", 1, now, answered_by="101")
    assert await store.add(request("fourth")), "over: the number may ask again"


async def test_two_engines_claim_one_request_and_one_wins(store, tmp_path):
    await store.add(request())
    # A second connection stands for the second engine (same database).
    other = open_callbacks(store.url)
    try:
        [r] = await store.open(T0)
        now = T0 + timedelta(seconds=1)
        wins = await asyncio.gather(store.claim(r, "pbx_app-a", now, now + timedelta(seconds=30)),
                                    other.claim(r, "pbx_app-b", now, now + timedelta(seconds=30)))
        won = [w for w in wins if w is not None]
        assert len(won) == 1
        assert won[0].state == "calling" and won[0].leg == 3 and won[0].lease_owner in ("pbx_app-a", "pbx_app-b")
        assert await store.open(now) == [], "a held request is not offered to anyone"
    finally:
        await other.close()


async def test_a_lease_that_runs_out_frees_the_request_for_another_engine(store):
    await store.add(request())
    [r] = await store.open(T0)
    held = await store.claim(r, "pbx_app-a", T0, T0 + timedelta(seconds=30))
    assert held is not None
    assert await store.claim(r, "pbx_app-b", T0 + timedelta(seconds=10), T0 + timedelta(seconds=40)) is None
    assert await store.renew(r.id, "pbx_app-a", T0 + timedelta(seconds=60))
    assert await store.claim(r, "pbx_app-b", T0 + timedelta(seconds=45), T0 + timedelta(seconds=75)) is None
    # a dies: its lease runs out, b takes the request over and a may not write any more
    later = T0 + timedelta(seconds=61)
    assert [x.id for x in await store.open(later)] == [r.id]
    taken = await store.claim(r, "pbx_app-b", later, later + timedelta(seconds=30))
    assert taken is not None and taken.lease_owner == "pbx_app-b" and taken.leg == 4
    assert not await store.renew(r.id, "pbx_app-a", later + timedelta(seconds=60))
    assert not await store.finish(r.id, "pbx_app-a", "done", 1, later, answered_by="101")
    assert await store.finish(r.id, "pbx_app-b", "done", 1, later, answered_by="101")
    done = await store.get(r.id)
    assert (done.state, done.answered_by, done.lease_owner) == ("done", "101", None)
    assert await store.open(later + timedelta(hours=1)) == []


async def test_an_employee_is_called_back_for_one_request_at_a_time(store):
    await store.add(request("old", at=T0))
    await store.add(request("new", at=T0 + timedelta(seconds=1), client="79001110000"))
    await store.add(request("other", employee="102", at=T0 + timedelta(seconds=2), client="79002220000"))
    old, new, other = await store.open(T0 + timedelta(seconds=3))
    now = T0 + timedelta(seconds=3)
    assert await store.claim(old, "a", now, now + timedelta(seconds=30)) is not None
    assert await store.claim(new, "b", now, now + timedelta(seconds=30)) is None, "101 is already calling back"
    assert await store.claim(other, "b", now, now + timedelta(seconds=30)) is not None
    assert await store.finish(old.id, "a", "waiting", 1, now + timedelta(seconds=60))
    assert await store.claim(new, "b", now, now + timedelta(seconds=30)) is not None


async def test_a_request_past_its_time_expires_once(store):
    await store.add(request(expires_at=T0 + timedelta(seconds=20)))
    [r] = await store.open(T0)
    assert await store.expire(r, T0 + timedelta(seconds=10)) is None, "not yet"
    held = await store.claim(r, "a", T0 + timedelta(seconds=10), T0 + timedelta(seconds=40))
    assert await store.expire(r, T0 + timedelta(seconds=30)) is None, "a holder is still calling"
    late = T0 + timedelta(seconds=41)
    expired = await store.expire(held, late)
    assert expired is not None and expired.state == "expired" and expired.leg == 4
    assert await store.expire(held, late) is None, "only one engine writes the expiry"
    assert await store.claim(r, "b", late, late + timedelta(seconds=30)) is None
