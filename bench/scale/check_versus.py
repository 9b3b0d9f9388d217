#!/usr/bin/env python3
"""`pbx-app check` of the same policies by two (or more) source trees, run after run in turn, so
that a before/after pair shares the machine's load of the minute (issue 25: check ≤ 1 s at
10,000 employees). Prints the median, the fastest and the slowest of wall and CPU time
(user + system: the steadier figure on a loaded machine) per tree and policy.

    bench/scale/make_policy.py 10000 /tmp/pbx-scale-policy/policy-10000.yaml
    git archive main | tar -x -C /tmp/before          # the code before, beside this tree
    bench/scale/check_versus.py --tree /tmp/before --tree . /tmp/pbx-scale-policy/policy-10000.yaml

Each run is a fresh `python -m pbx_app check` with PYTHONPATH set to the tree. Figures to read,
not a test."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def check(tree: Path, policy: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pbx_app", "check", str(policy)], cwd=tree, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(tree)))
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"check in {tree} failed: {out.stderr[-2000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tree", action="append", type=Path, required=True, help="a source tree (give two or more)")
    p.add_argument("policies", nargs="+", type=Path, help="policy files or directories")
    args = p.parse_args()
    policies = args.policies
    trees = [t.resolve() for t in args.tree]
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}, {args.runs} runs each, in turn")
    for policy in policies:
        figures: dict[Path, list[tuple[float, float]]] = {t: [] for t in trees}
        for _ in range(args.runs):
            for tree in trees:
                figures[tree].append(check(tree, policy))
        for tree in trees:
            wall, cpu = zip(*figures[tree])
            print(f"{policy.name:>24}  {str(tree):<32} wall {statistics.median(wall):.2f} s ({min(wall):.2f}–{max(wall):.2f})"
                  f"  CPU {statistics.median(cpu):.2f} s ({min(cpu):.2f}–{max(cpu):.2f})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
