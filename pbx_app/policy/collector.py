"""The cycle collector, paused while a big policy is read and built.

Why: reading a 10,000-employee policy makes ~1,000,000 objects (YAML nodes, their marks, the
tree, the model), none of them garbage. The collector, triggered by the allocations alone, walked
that growing heap again and again: 2.3 s of CPU for `pbx-app check` at 10,000 employees against
0.9 s with it paused (bench/README.md). Nothing read here makes reference cycles worth collecting
at once; whatever does is found by the first collection after the pause.

Pauses nest and may overlap across threads (the page reads in a thread while an engine's loop
rebuilds a policy): the collector runs again when the last one ends, and only if it ran before
the first began."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_pauses = 0
_was_enabled = False
_freeze = False  # asked for by a pause that ended while another still ran


def pause() -> None:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1


def resume(freeze: bool = False) -> None:
    """Ends one pause. ``freeze``: what is alive when the last pause ends is moved out of the
    collector's sight for good (``gc.freeze``), so that a long-lived policy is never walked again."""
    global _pauses, _freeze
    with _lock:
        _pauses -= 1
        _freeze = _freeze or freeze
        if _pauses == 0:
            if _freeze:
                gc.freeze()
            _freeze = False
            if _was_enabled:
                gc.enable()


@contextmanager
def collector_paused() -> Iterator[None]:
    pause()
    try:
        yield
    finally:
        resume()
