"""The whole suite: when it ends, no process it started may be left running (a PostgreSQL, SIPp,
Chromium, Asterisk, an engine or page process, a dockerd). The run fails if one is, names it,
and ends it.

How the suite knows its own processes: every process inherits the environment, so a mark put in
it at the start is found (in /proc/PID/environ) on everything the suite started, even once it
is orphaned and re-parented to PID 1. Processes that were running before the run, or that
another session started meanwhile, lack this run's mark and are never touched."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.support.wait import until_sync

pytest_plugins = ["tests.support.postgres"]  # the postgres_server fixture, for any test that asks

MARK = "TESTSUITE_SESSION"  # not PBX_*: some tests start the app with the PBX_* settings cleared
GRACE = 5.0  # s for processes being stopped at the end of the last test to finish exiting


# Per folder: the marker its tests carry and their own time limit (pyproject's `timeout` is the
# default). The limit counts the test's body only: their fixtures wait for the test bed's lock
# (another worktree's run may hold it for many minutes) and build images, each with its own
# deadline.
SLOW_FOLDERS = {
    "integration": ("asterisk", 300),
    "image": ("image", 1200),  # the image's own unit run may take 900 s
    "packaging": (None, 120),
}


def pytest_configure(config: pytest.Config) -> None:
    os.environ[MARK] = uuid.uuid4().hex


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if folder in SLOW_FOLDERS:
            marker, seconds = SLOW_FOLDERS[folder]
            if marker:
                item.add_marker(marker)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(seconds, func_only=True))


def started_by_this_run() -> dict[int, str]:
    """The live processes (pid → command line) carrying this run's mark, and their descendants
    (a server that rewrites its process title, as PostgreSQL's workers do, loses the mark), but
    not the runner itself."""
    mark = f"{MARK}={os.environ[MARK]}".encode()
    parents, marked, commands = {}, set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":  # a zombie has already exited
                continue
            parents[pid] = int(stat[1])
            commands[pid] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                marked.add(pid)
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not ours to read
            continue

    def ours(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid in marked:
                return True
            seen.add(pid)
            pid = parents.get(pid, 0)
        return False

    me = os.getpid()
    return {pid: commands[pid] or f"[pid {pid}]" for pid in parents if pid != me and ours(pid)}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        until_sync(lambda: not started_by_this_run(), GRACE, "", every=0.2)
        return
    except TimeoutError:
        left = started_by_this_run()
    if not left:
        return
    report = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests still running {GRACE:.0f} s after the run (now ended):"]
    lines += [f"  {pid}: {command[:200]}" for pid, command in sorted(left.items())]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if report is not None:
        report.write_sep("=", "processes left behind", red=True)
        for line in lines:
            report.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
