"""set_within: the wait of the long-lived loops (journal, callbacks, notices, AMI, supervisor)
must end when the task is cancelled, even as the event it waits for is set (Python 3.11's
wait_for swallows that cancel; the clean-clone CI runs hung on it)."""

from __future__ import annotations

import asyncio

import pytest

from pbx_app.waiting import set_within


async def _loop(event: asyncio.Event, rounds: list) -> None:
    while True:
        rounds.append(await set_within(event, 10))
        event.clear()


async def test_a_cancel_that_comes_as_the_event_is_set_ends_the_loop():
    event, rounds = asyncio.Event(), []
    task = asyncio.create_task(_loop(event, rounds))
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()  # the same turn of the loop: wait_for would return normally and the loop go on
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert task.cancelled() and rounds == []


async def test_a_cancel_swallowed_before_is_raised_at_the_next_wait():
    event, seen = asyncio.Event(), []

    async def loop() -> None:
        while True:
            answer = asyncio.Event()
            # The answer, then the cancel, in one turn: 3.11's wait_for returns the answer and
            # the cancel is lost (an AMI Ping answered as stop() cancels the client).
            asyncio.get_running_loop().call_soon(lambda: (answer.set(), task.cancel()))
            await asyncio.wait_for(answer.wait(), 10)
            seen.append("answered")
            await set_within(event, 10)

    task = asyncio.create_task(loop())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled() and len(seen) <= 1


async def test_it_says_whether_the_event_came_in_time():
    event = asyncio.Event()
    assert await set_within(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await set_within(event, 5) is True
