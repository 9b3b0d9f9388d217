#!/usr/bin/env python3
"""What one AMI session costs Asterisk while calls flow: the reproduction behind issue 26's "why
the engine does not hear the dialplan's reports over AMI" (bench/README.md, "Why 4 and not 3").

Asterisk builds every AMI event of every channel as text as soon as one session is logged in,
whatever that session asked for (main/manager.c: any_manager_listeners, then
__manager_event_sessions_va; a session's event classes and filters are applied after). So the
session's cost is paid on every call, ours or not. This script measures it: Asterisk's CPU in
windows of ``--window`` s, alternately with no AMI session and with one logged in (the test bed's
AMI user, `Events: call,user`, as FastAGI mode's callbacks log in), at a steady call rate.

    bench/run --rates 50 --soak 100 --flows baseline     # in one shell: steady traffic
    .venv/bin/python bench/ami_cost.py --rate 50         # in another, once the calls flow
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pbx_app.ami import AmiClient  # noqa: E402


def asterisk_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def window(pid: int, seconds: float) -> float:
    """Asterisk's CPU seconds per second over the window."""
    cpu, start = asterisk_cpu(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (asterisk_cpu(pid) - cpu) / (time.monotonic() - start)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50, help="the calls per second flowing meanwhile")
    parser.add_argument("--window", type=float, default=12, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--secret", default="pbx_app_ami_secret", help="the test bed's AMI secret")
    args = parser.parse_args()
    pid = int(subprocess.run(["pgrep", "-x", "asterisk"], capture_output=True, text=True).stdout.split()[0])
    events = 0

    def count(_message) -> None:
        nonlocal events
        events += 1

    rows = []
    for _ in range(args.rounds):
        rows.append(("no session", await window(pid, args.window)))
        ami = AmiClient("tcp://127.0.0.1:5038", "pbx_app", args.secret, on_event=count)
        task = asyncio.create_task(ami.run())
        await asyncio.sleep(1)
        rows.append(("one session", await window(pid, args.window)))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ami.close()
        await asyncio.sleep(1)
    rows.append(("no session", await window(pid, args.window)))
    for what, load in rows:
        print(f"{what:12} Asterisk {load * 1000 / args.rate:6.2f} ms a call")
    print(f"events the session received: {events}")


if __name__ == "__main__":
    asyncio.run(main())
