"""The journal's database, on SQLite and on a real PostgreSQL server: what goes in comes back
as the same calls, a batch is applied once, replays change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.records import fold
from pbx_app.history.spool import Position
from pbx_app.history.database import open_store

T0 = datetime(2026, 11, 29, 9, 0, 0, 123456, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def forwarded_call(call_id: str = "c1", start: float = 0) -> list:
    """101 rings out, an announcement, 102 answers; the caller is Cyrillic-named on purpose."""
    return [
        CallStarted(call_id, at(start), "79001234567", "101", "1764406800.12", ("rule: 101 forwards to 102",),
                    channel_name="PJSIP/client-ru-00000001"),
        LegStarted(call_id, 1, at(start + 0.1), "employee", ("101",)),
        LegEnded(call_id, 1, at(start + 3.1), "no_answer", cause="NOANSWER,19"),
        LegStarted(call_id, 2, at(start + 3.2), "announcement"),
        LegEnded(call_id, 2, at(start + 6.0), "played", cause="sound:pbx_app/forward-notice"),
        LegStarted(call_id, 3, at(start + 6.1), "forward", ("102", "105"), department="sales"),
        LegEnded(call_id, 3, at(start + 20), "answered", answered_by="102", answered_at=at(start + 8), cause="ANSWER,16"),
        CallEnded(call_id, at(start + 20), "answered", "answered by 102 (Пётр)"),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/journal.db"
    else:
        url = request.getfixturevalue("postgres_server").new_database("store")
    s = open_store(url)
    yield s
    await s.close()


WHOLE_DAY = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))


async def test_a_call_comes_back_as_it_went_in(store):
    events = forwarded_call()
    end = await store.ship("spool-a", None, events, Position(1, 900))
    assert end == Position(1, 900)
    assert await store.calls(*WHOLE_DAY) == fold(events)
    assert await store.position("spool-a") == Position(1, 900)


async def test_a_batch_is_applied_in_pieces_and_an_open_call_shows_open(store):
    events = forwarded_call()
    await store.ship("s", None, events[:3], Position(1, 300))
    [open_call] = await store.calls(*WHOLE_DAY)
    assert open_call.result is None and open_call.legs[0].outcome == "no_answer"
    await store.ship("s", Position(1, 300), events[3:], Position(1, 900))
    assert await store.calls(*WHOLE_DAY) == fold(events)


async def test_a_second_shipper_with_a_stale_position_applies_nothing(store):
    events = forwarded_call()
    await store.ship("s", None, events[:3], Position(1, 300))
    # Another process shipped this spool meanwhile: it gets the stored position back, no rows.
    assert await store.ship("s", None, events, Position(1, 900)) == Position(1, 300)
    assert await store.ship("s", Position(1, 100), events, Position(1, 900)) == Position(1, 300)
    [call] = await store.calls(*WHOLE_DAY)
    assert call.result is None and len(call.legs) == 1


async def test_replaying_events_changes_nothing(store):
    events = forwarded_call()
    await store.ship("s1", None, events, Position(1, 900))
    # The same events again (a spool whose position was lost): the upserts land on the same rows.
    await store.ship("s2", None, events, Position(1, 900))
    await store.ship("s3", None, events[6:7], Position(1, 10))  # a LegEnded repeated alone
    assert await store.calls(*WHOLE_DAY) == fold(events)


async def test_a_later_fact_wins_but_a_missing_one_erases_nothing(store):
    events = forwarded_call()
    again = LegEnded("c1", 3, at(21), "answered")  # a resumed flow that knew less
    await store.ship("s", None, [*events, again], Position(1, 1000))
    [call] = await store.calls(*WHOLE_DAY)
    leg = call.leg(3)
    assert (leg.ended_at, leg.answered_by, leg.answered_at) == (at(21), "102", at(8))
    assert [call] == fold([*events, again])


async def test_the_period_selects_calls_by_their_start(store):
    events = forwarded_call("early", 0) + forwarded_call("late", 3600)
    await store.ship("s", None, events, Position(1, 2000))
    assert [c.call_id for c in await store.calls(T0, at(3600))] == ["early"]
    assert [c.call_id for c in await store.calls(at(1), at(7200))] == ["late"]
    assert [c.call_id for c in await store.calls(T0 - timedelta(days=1), at(7200))] == ["early", "late"]
    late = (await store.calls(at(1), at(7200)))[0]
    assert [l.leg for l in late.legs] == [1, 2, 3], "legs of other calls never leak in"


async def test_times_keep_their_microseconds_and_zone(store):
    await store.ship("s", None, forwarded_call(), Position(1, 900))
    [call] = await store.calls(*WHOLE_DAY)
    assert call.started_at == T0 and call.started_at.utcoffset() == timedelta(0)
    assert call.caller == "79001234567" and call.detail == "answered by 102 (Пётр)"
    assert call.channel_name == "PJSIP/client-ru-00000001"
    assert call.leg(3).targets == ("102", "105") and call.leg(3).department == "sales"


async def test_a_database_that_is_not_there_raises_a_store_error(tmp_path):
    from pbx_app.db.errors import StoreError

    (tmp_path / "file").write_text("")
    for url in (f"sqlite:///{tmp_path}/file/journal.db", "postgresql://pbx@127.0.0.1:1/none"):
        s = open_store(url)
        with pytest.raises(StoreError):
            await s.position("x")
        await s.close()


def test_a_url_of_another_kind_is_refused_with_the_forms_we_take():
    with pytest.raises(ValueError, match="sqlite:////path"):
        open_store("mysql://root@localhost/pbx")
    with pytest.raises(ValueError, match="sqlite:////absolute"):
        open_store("sqlite:journal.db")


async def test_one_call_is_found_by_its_id(store):
    await store.ship("spool-a", None, forwarded_call("c1") + forwarded_call("c2", 30), Position(1, 900))
    assert await store.call("c2") == fold(forwarded_call("c2", 30))[0]
    assert await store.call("nope") is None
