"""The engine hands freed heap pages back to the system (pbx_app/memory.py): an engine's RSS
otherwise crept up under load with no Python object growing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pbx_app import memory


async def test_malloc_trim_is_called_at_each_interval_off_the_event_loop(monkeypatch):
    calls: list[tuple[int, str]] = []

    def trim(pad: int) -> int:
        calls.append((pad, threading.current_thread().name))
        return 1

    monkeypatch.setattr(memory, "_malloc_trim", lambda: trim)
    task = asyncio.create_task(memory.give_back_freed_memory(interval=0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3
    assert all(pad == 0 for pad, _ in calls)
    assert threading.main_thread().name not in {name for _, name in calls}


async def test_without_malloc_trim_it_returns_at_once(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    await asyncio.wait_for(memory.give_back_freed_memory(interval=0.01), 1)


def test_this_glibc_has_malloc_trim_and_it_runs():
    trim = memory._malloc_trim()
    assert trim is not None, "the test bed and the image run on glibc"
    assert trim(0) in (0, 1)
