"""How a long-running process (an engine, the FastAGI server) answers the system's signals."""

from __future__ import annotations

import asyncio
import signal


def handle_signals(policy) -> asyncio.Event:
    """SIGTERM and SIGINT set the returned event (stop); SIGHUP re-reads the policy in a thread,
    so checking a large file never holds the calls on this loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task] = set()

    def reload() -> None:
        task = asyncio.create_task(policy.reload_off_loop())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
