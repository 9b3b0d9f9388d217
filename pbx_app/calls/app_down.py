"""What the dialplan does with a new call when no engine claims it (and, in FastAGI mode, when the
server does not answer): the employee's own first ring and what follows it, kept in one small file
per employee that pbx-app-down (dialplan/pbx_app.conf) reads with FILE().

Why a file: the engines cannot write AstDB over ARI (/asterisk/variable ignores DB(), see
docs/install-debian.md), AMI would be a second interface with its own secret to install, and a
generated dialplan include needs a dialplan reload that would also apply whatever the site has
half-edited in its own extensions.conf. A file per employee is read at the call, needs no reload,
and is replaced atomically. The folder is PBX_FALLBACK_DIR for the engines and the dialplan's
global of the same name (the same path unless Asterisk runs in a chroot, as in the test bed).

One line, no newline: PBX_RING ^-packed (contract.PackedRing; empty when the employee is off), "~", and
PBX_FB for that ring's outcome (contract.Fallbacks). "{call}" stands for the call's id, which only
the dialplan knows (the channel's UNIQUEID). The company's numbers (DIDs) get a file each, under
every form a carrier may send, with their owner's plan."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Callable, Iterator

from .. import contract as dp
from ..policy.model import Policy
from ..policy.numbers import dialled_forms
from ..routing import decide
from ..routing.availability import at_work
from ..routing.decide import CallContext
from .fallback import after_first_ring

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^[0-9A-Za-z_+]+$")  # an extension that is safe as a file name


def app_down_line(policy: Policy, extension: str, at: datetime, away: frozenset[str] | None = None,
                  history: str = "") -> str:
    """The file's content for ``extension`` at ``at`` (schedules and absences decide the first ring).
    No CRM: with no engine there is no lookup, so the employee's own policy applies. ``away``:
    who is away at ``at`` (off_duty), where already known. ``history``: the id of the journal the
    engines write (history/unseen_calls.py); each leg's userfield ends with the employee dialled
    and it, so that an engine of that journal brings the call into history from the CDR."""
    plan = decide(policy, CallContext(extension=extension, caller="", at=at), away=away)
    unseen = f"{plan.extension}:{history}" if history else ""
    ring, leg = "", 0
    if plan.first is not None:
        leg = 1
        ring = dp.PackedRing("&".join(t.endpoint for t in plan.first.targets), plan.first.timeout,
                       f"{dp.CALL_PLACEHOLDER}:{leg}:employee:{extension}:fallback" + (unseen and f":{unseen}")).encode()
    return ring + dp.APP_DOWN_SEPARATOR + after_first_ring(plan, leg, dp.CALL_PLACEHOLDER, unseen).encode()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


SLICE = 0.001  # s: the longest the event loop works on the files' plans before it serves others (other
# work may share the same turn of the loop: a policy being rebuilt, an old one taken apart)


def off_duty(policy: Policy, at: datetime) -> Iterator[None]:
    """Who is away at ``at`` (returned when done; sliced as ``wanted_lines``). The plans depend
    on the time through this alone (routing.decide asks nothing else of the clock), so when it is
    the same as a minute ago, so is every file."""
    zone, away = policy.site.timezone, set()
    deadline = time.perf_counter() + SLICE
    for ext, e in policy.employees.items():
        if (e.schedule is not None or e.absences) and not at_work(e, at, zone):
            away.add(ext)
        if time.perf_counter() > deadline:
            yield
            deadline = time.perf_counter() + SLICE
    return frozenset(away)


def wanted_lines(policy: Policy, at: datetime, away: frozenset[str] | None = None, history: str = "") -> Iterator[None]:
    """Every file's content (returned when done): a generator that yields between slices of
    about ``SLICE`` s, so that an event loop can run it without a stall. 10,000 employees take
    ~1 s of CPU; in a thread they held the GIL against the loop (390 ms stalls, bench/README.md)."""
    # The company's numbers too (pbx-inbound passes their digits on): the owner's plan, under
    # every form the carrier may send, since the dialplan can only look a name up as it is.
    names = chain((ext for ext in policy.employees if _FILE_NAME.match(ext)),
                  (form for key in policy.numbers for form in dialled_forms(key)))
    wanted: dict[str, str] = {}
    deadline = time.perf_counter() + SLICE
    for name in names:
        if name not in wanted:
            wanted[name] = app_down_line(policy, name, at, away, history)
        if time.perf_counter() > deadline:
            yield
            deadline = time.perf_counter() + SLICE
    return wanted


def _changes(files: "AppDownFiles") -> Iterator[None]:
    """(wanted lines, the state they are for), or None when the folder is up to date."""
    policy, at = files.policy(), files.clock()
    state = (policy, (yield from off_duty(policy, at)))
    last = files.up_to_date
    if last is not None and last[0] is state[0] and last[1] == state[1]:
        return None
    return (yield from wanted_lines(policy, at, state[1], files.history)), state


def _run_through(slices: Iterator[None]):
    try:
        while True:
            next(slices)
    except StopIteration as done:
        return done.value


async def _run_through_on_loop(slices: Iterator[None]):
    try:
        while True:
            next(slices)
            await asyncio.sleep(0)
    except StopIteration as done:
        return done.value


class AppDownFiles:
    """Keeps the folder in step with the policy: rewritten when the policy object changes (start,
    reload, `pbx-app publish` followed by the engines) and every ``interval`` s, since schedules and
    absences change the first ring with the time. Plans are worked out again only when the policy
    or who is away has changed, and only changed files are written."""

    def __init__(self, folder: Path, policy: Callable[[], Policy], clock: Callable[[], datetime] = _utcnow,
                 interval: float = 60.0, history: str = ""):
        self.folder = Path(folder)
        self.history = history  # the journal's id, in each leg's userfield (app_down_line)
        self.policy = policy
        self.clock = clock
        self.interval = interval
        self._written: dict[str, str] = {}
        self._failed = False
        self.up_to_date: tuple[Policy, frozenset[str]] | None = None  # what the folder was last made for

    def write(self) -> int:
        """Brings the folder up to date; how many files were written or removed."""
        found = _run_through(_changes(self))
        return 0 if found is None else self._sync(*found)

    async def refresh(self) -> int:
        """``write``, with the plans worked out on the event loop a slice at a time and the files
        written in a thread."""
        found = await _run_through_on_loop(_changes(self))
        return 0 if found is None else await asyncio.to_thread(self._sync, *found)

    def _sync(self, wanted: dict[str, str], state: tuple[Policy, frozenset[str]]) -> int:
        changed = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.folder.stat().st_mode & 0o005 != 0o005:
                os.chmod(self.folder, 0o755)  # Asterisk's user reads it; the units' UMask=0027 would not let it
            for ext, line in wanted.items():
                if self._written.get(ext) != line:
                    _replace(self.folder / ext, line)
                    self._written[ext] = line
                    changed += 1
            for path in self.folder.iterdir():
                if path.name not in wanted and _FILE_NAME.match(path.name):
                    path.unlink(missing_ok=True)  # someone who left: the dialplan's plain fallback
                    self._written.pop(path.name, None)
                    changed += 1
        except OSError as exc:
            if not self._failed:
                log.error("cannot write the no-engine fallback files in PBX_FALLBACK_DIR=%s (%s): with no engine, "
                          "calls ring the dialed number for PBX_FALLBACK_RINGTIME, then busy", self.folder,
                          exc.strerror or exc)
            self._failed = True
            self.up_to_date = None  # tried again next time
            return changed
        self._failed = False
        self.up_to_date = state
        return changed

    async def run(self) -> None:
        last_policy, last_time = None, 0.0
        loop = asyncio.get_running_loop()
        while True:
            policy = self.policy()
            if policy is not last_policy or loop.time() - last_time >= self.interval:
                last_policy, last_time = policy, loop.time()
                await self.refresh()
            await asyncio.sleep(1.0)


def _replace(path: Path, text: str) -> None:
    """Readers (FILE() in Asterisk) see the old line or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)  # Asterisk runs as its own user
    os.replace(tmp, path)
