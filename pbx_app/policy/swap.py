"""Putting a big policy in force beside a busy event loop.

A company's policy (10,000 employees) is ~100,000 Python objects. Parsing it in a worker thread
of the engine is not enough: that thread holds the GIL for a switch interval at a time, and on a
loaded machine the OS can preempt it while it holds it, so the event loop waited 20–50 ms at a
time; the cycle collector, triggered by all the new objects, walks the whole heap in one go
(0.1–0.2 s); and freeing the old policy is one C-level cascade (~40 ms).

So the policy is read and checked in a child process (child.py), and the engine unpickles the
result one small chunk per turn of its event loop, with the cycle collector paused meanwhile;
the new objects are then frozen (``gc.freeze``: later collections skip them, as they skip all
else alive at that moment — an engine's objects are freed by reference counting). An old policy
is taken apart the same way, a chunk per turn, once no call in progress holds it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle
import subprocess
import sys
from pathlib import Path

from . import collector
from .loader import Analysis, analyse_file
from .problems import Problem

log = logging.getLogger(__name__)

RETIRE_POLL = 1.0  # s: how often a retired policy is checked for calls still holding it
RETIRE_WAIT = 3600.0  # s: a holder that keeps it longer frees it itself, whenever it lets go
TAKE_APART = 200  # entries freed per turn of the loop


async def read_in_child(path: str | Path, announcements_dir: str | Path | None = None,
                        text: str | None = None) -> Analysis:
    """The analysis of the file at ``path`` (or of ``text``, named ``path`` in errors), made in
    a child process and rebuilt here without a noticeable pause of the event loop."""
    folder = str(announcements_dir) if announcements_dir is not None else ""
    args = ["--stdin", str(path), folder] if text is not None else [str(path), folder]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbx_app.policy.child", *args,
            stdin=asyncio.subprocess.PIPE if text is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        return Analysis(None, [Problem(str(path), 1, 1, f"cannot check the policy: cannot start {sys.executable}: "
                                                        f"{exc.strerror}")])
    out, err = await proc.communicate(text.encode("utf-8") if text is not None else None)
    if proc.returncode != 0:
        why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return Analysis(None, [Problem(str(path), 1, 1, f"cannot check the policy: {why[0]}")])
    return await _materialise(out)


def read_in_child_now(path: str | Path, announcements_dir: str | Path | None = None) -> Analysis:
    """``read_in_child`` for an engine starting, before its event loop runs: the parse's peak
    (100+ MB at 10,000 employees) stays in the child instead of in the engine's heap for good."""
    folder = str(announcements_dir) if announcements_dir is not None else ""
    try:
        done = subprocess.run([sys.executable, "-m", "pbx_app.policy.child", str(path), folder],
                              stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError:  # no interpreter to start: read it here, as before
        return analyse_file(path, announcements_dir)
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return Analysis(None, [Problem(str(path), 1, 1, f"cannot check the policy: {why[0]}")])
    analysis = None
    for analysis in _building_from(done.stdout):
        pass
    return analysis  # type: ignore[return-value]


async def _materialise(data: bytes) -> Analysis:
    analysis = None
    for analysis in _building_from(data):
        if analysis is None:
            await asyncio.sleep(0)
    return analysis  # type: ignore[return-value]


def _building_from(data: bytes):
    """Rebuilds the child's result: yields None after each chunk (a turn of the loop may come
    between), then the Analysis."""
    policy, errors, warnings, chunks = pickle.loads(data)
    if policy is None:
        yield Analysis(None, errors, warnings)
        return
    del data
    tables: dict[str, dict] = {"employees": {}, "departments": {}, "clients": {}}
    collector.pause()
    try:
        for name, chunk in chunks:
            tables[name].update(pickle.loads(chunk))
            yield None
    finally:
        collector.resume(freeze=True)
    crm = dataclasses.replace(policy.crm, clients=tables["clients"])
    policy = dataclasses.replace(policy, employees=tables["employees"], departments=tables["departments"], crm=crm)
    yield Analysis(policy, errors, warnings)


def retire(policy) -> None:
    """Frees ``policy`` a chunk per turn of the event loop, once no call in progress holds it."""
    box = [policy]
    del policy
    task = asyncio.get_running_loop().create_task(_take_apart(box))
    _retiring.add(task)
    task.add_done_callback(_retiring.discard)


_retiring: set[asyncio.Task] = set()


def _held_by_one_name() -> int:
    """What sys.getrefcount says of an object that only one local name holds: 2 up to Python
    3.13 (the name and the call's argument), 1 from 3.14 on (the argument is borrowed). Counting
    against a fixed 2 took apart, on 3.14, a policy that a call in progress still held."""
    probe = object()
    return sys.getrefcount(probe)


_ONE_NAME = _held_by_one_name()


async def _take_apart(box: list) -> None:
    policy = box.pop()
    waited = 0.0
    # Held by this frame alone: no call in progress reads it any more.
    while sys.getrefcount(policy) > _ONE_NAME:
        if waited > RETIRE_WAIT:
            return
        await asyncio.sleep(RETIRE_POLL)
        waited += RETIRE_POLL
    tables = [policy.employees, policy.departments, policy.crm.clients]
    del policy
    for table in tables:
        if sys.getrefcount(table) > _ONE_NAME + 1:  # more than the list and this loop: someone else reads it
            continue
        while table:
            for _ in range(min(TAKE_APART, len(table))):
                table.popitem()
            await asyncio.sleep(0)
