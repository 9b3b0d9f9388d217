"""Waiting for a condition instead of sleeping for a guess: the one poll-until helper of the
suite, in an async and a blocking flavour. Both give up at a deadline and say what never came.

    await until(lambda: journal.store_down, 5, "the journal notices the database is away")
    calls = await until(lambda: ended_calls(url), 30, "both calls in the journal")  # async check
    until_sync(lambda: answers(8088), 30, "ARI answers")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable

Check = Callable[[], Any]


def _describe(what: "str | Callable[[], str]") -> str:
    return what() if callable(what) else what


async def until(check: Check, timeout: float, what: "str | Callable[[], str]", every: float = 0.05) -> Any:
    """Calls ``check`` (it may return an awaitable) until it gives something true, and returns
    that. ``what`` (or what it returns, evaluated at the deadline) names the condition in the
    TimeoutError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"not within {timeout} s: {_describe(what)}")
        await asyncio.sleep(every)


def until_sync(check: Check, timeout: float, what: "str | Callable[[], str]", every: float = 0.1) -> Any:
    """``until`` for code outside an event loop (fixtures that start servers, containers)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {_describe(what)}")
        time.sleep(every)
