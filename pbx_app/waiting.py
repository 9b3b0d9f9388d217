"""Waiting for an asyncio.Event with a deadline, in the loop of a long-lived task.

Python 3.11's ``asyncio.wait_for`` swallows a cancel that arrives in the same turn of the event
loop as the awaited event is set (CPython gh-86296; 3.12's new wait_for fixes it): the task runs
on after ``stop()`` cancelled it, and whoever awaits it waits for ever. Two clean-clone CI runs
hung that way, in test_agi_callback's teardown: the AMI client's loop, cancelled just as its link
dropped, went back to reconnecting."""

from __future__ import annotations

import asyncio


async def set_within(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set, waiting up to ``timeout`` s for it; a cancel always gets through,
    and one an earlier ``wait_for`` of the same task swallowed (an AMI action answered as the task
    was cancelled) is raised here, at the loop's next wait."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=timeout)
    finally:
        if not waiter.done():
            waiter.cancel()
    return event.is_set()
