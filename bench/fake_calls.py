"""The app's own cost per forwarded call, without Asterisk: N calls through one CallEngine on the
fake Asterisk (pbx_app.testing), the bench policy (101 rings, then forward to 102, who answers),
the journal in memory. Prints ARI requests per call and the app's CPU per call; with --profile,
where that CPU goes (cProfile: own time by module, then the N costliest functions, cumulative).
The fake's own work is counted too, so the CPU figure is an upper bound for the engine; compare
runs of the same script, not with bench/run.

    .venv/bin/python bench/fake_calls.py --calls 2000 [--profile 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
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


def by_module(stats: pstats.Stats) -> list[str]:
    """Own (not cumulative) profiled time per place: each pbx_app module, the fake and this script,
    the event loop, JSON, the rest; as shares, since profiling slows every call."""
    here = os.path.dirname(os.path.abspath(__file__))
    groups: Counter[str] = Counter()
    for (path, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if path.endswith("pbx_app/testing.py") or path.startswith(here):
            place = "the fake and this script"
        elif "/pbx_app/" in path:
            place = "pbx_app/" + path.split("/pbx_app/", 1)[1]
        elif "asyncio" in path or "selectors" in path or name.startswith("<method 'run' of '_contextvars"):
            place = "asyncio (event loop)"
        elif "/json/" in path:
            place = "json"
        else:
            place = "other (builtins, stdlib)"
        groups[place] += own
    total = sum(groups.values()) or 1.0
    return [f"{share / total * 100:5.1f} %  {place}" for place, share in groups.most_common()]


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
        stats = pstats.Stats(profiler)
        print("Own profiled time by place:")
        print("\n".join(by_module(stats)))
        stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
