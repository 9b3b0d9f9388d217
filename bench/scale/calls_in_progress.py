"""One engine holding N calls in progress at once (issue 25, item 6): the real CallEngine with
its real journal (spool + SQLite) on the fake Asterisk (pbx_app/testing.py), every employee's
phone ringing until the bench lets the rings end; then each call is forwarded to a colleague
who answers. Prints the process's RSS before the calls, with all N ringing, and after they
ended, and checks every call was served (the journal says answered).

    bench/scale/calls_in_progress.py [--calls 2000] [--employees 1000]

The fake shares the process and keeps every channel and request it saw (a few hundred bytes a
call): the RSS printed is an upper bound of the engine's own."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # after PYTHONPATH: it may name another checkout

from pbx_app.calls.engine import CallEngine  # noqa: E402
from pbx_app.history.database import open_store  # noqa: E402
from pbx_app.history.journal import SpooledJournal  # noqa: E402
from pbx_app.policy import parse_policy  # noqa: E402
from pbx_app.testing import FakeAsterisk  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def policy_text(employees: int) -> str:
    lines = ["employees:"]
    for n in range(employees):
        ext = 10000 + n
        mate = 10000 + (n + 1) % employees
        lines.append(f'  "{ext}": {{name: Employee {n}, ring_time: 20, on_no_answer: {{action: forward, to: "{mate}"}}}}')
    return "\n".join(lines) + "\n"


async def main(calls: int, employees: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="pbx-inprogress-"))
    policy = parse_policy(policy_text(employees))
    # Even extensions ring until released; odd ones answer: each call rings an even one, then its odd mate answers.
    phones = {f"PJSIP/{10000 + n}": ("rings" if n % 2 == 0 else "answer") for n in range(employees)}
    fake = FakeAsterisk(phones=phones)
    journal = await SpooledJournal(tmp / "spool", open_store(f"sqlite:///{tmp}/journal.db")).start()
    engine = CallEngine(fake, lambda: policy, journal=journal, max_calls=0)
    fake.attach(engine)
    gc.collect()
    before = rss_mb()
    began = time.monotonic()
    for n in range(calls):
        fake.new_call(str(10000 + (2 * n) % employees), caller=f"7900{n:07d}")
        if n % 100 == 99:
            await fake.settle(50)
    await fake.settle(2000)
    ringing = len(engine.calls)
    gc.collect()
    during = rss_mb()
    print(f"{calls} calls offered in {time.monotonic() - began:.1f} s; in progress in the engine: {ringing}")
    fake.ring_ends.set()
    deadline = time.monotonic() + 120
    while engine.calls and time.monotonic() < deadline:
        await fake.settle(200)
        await asyncio.sleep(0.01)
    assert await journal.wait_shipped(60), "the journal did not reach the database"
    await journal.close()
    store = open_store(f"sqlite:///{tmp}/journal.db")
    now = datetime.now(timezone.utc)
    ended = await store.calls(now - timedelta(days=365), now + timedelta(days=1))  # the fake dates its channels in the past
    await store.close()
    answered = sum(c.result == "answered" for c in ended)
    gc.collect()
    after = rss_mb()
    print(f"policy: {employees} employees; RSS before the calls {before:.0f} MB, with {ringing} ringing {during:.0f} MB "
          f"(+{(during - before) * 1024 / max(ringing, 1):.0f} KB a call), after {after:.0f} MB")
    print(f"served: {answered} of {calls} calls answered (forwarded to a colleague), {len(ended)} in the journal")
    return 0 if ringing == calls and answered == calls else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--employees", type=int, default=1000)
    a = p.parse_args()
    sys.exit(asyncio.run(main(a.calls, a.employees)))
