"""The app's own cost per forwarded call, without Asterisk: N calls through one CallEngine on the
fake Asterisk (pbx_app.testing), the bench policy (101 rings, then forward to 102, who answers),
the journal in memory. Prints ARI requests per call and the app's CPU per call; with --profile,
where that CPU goes (cProfile, cumulative). The fake's own work is counted too, so the CPU figure
is an upper bound for the engine; compare runs of the same script, not with bench/run.

    .venv/bin/python bench/fake_calls.py --calls 2000 [--profile 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pbx_app.calls.engine import CallEngine  # noqa: E402
from pbx_app.history.events import MemoryJournal  # noqa: E402
from pbx_app.policy import parse_policy  # noqa: E402
from pbx_app.testing import FakeAsterisk  # noqa: E402

POLICY = parse_policy("""
employees:
  "101": {name: Ivan, ring_time: 2, on_no_answer: {action: forward, to: "102", announcement: none}}
  "102": {name: Petr, ring_time: 10}
""", "<bench>")


async def calls(n: int) -> tuple[FakeAsterisk, MemoryJournal]:
    fake = FakeAsterisk(phones={"PJSIP/101": "no_answer", "PJSIP/102": "answer"})
    journal = MemoryJournal()
    engine = CallEngine(fake, lambda: POLICY, journal=journal)
    fake.attach(engine)
    for _ in range(n):
        channel = fake.new_call("101")
        while fake.channels[channel].alive or engine.calls:
            await asyncio.sleep(0)
    await engine.drain()
    return fake, journal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    fake, journal = asyncio.run(calls(args.calls))
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    answered = sum(1 for e in journal.events if type(e).__name__ == "CallEnded" and e.result == "answered")
    kinds = Counter(p.rsplit("/", 1)[-1] for _, _, p in fake.requests)
    print(f"{args.calls} forwarded calls, {answered} answered")
    print(f"ARI requests per call: {len(fake.requests) / args.calls:.2f} "
          f"({', '.join(f'{k} {v / args.calls:.2f}' for k, v in kinds.most_common())})")
    print(f"CPU per call (engine + fake{', profiled' if profiler else ''}): {cpu / args.calls * 1000:.3f} ms")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
