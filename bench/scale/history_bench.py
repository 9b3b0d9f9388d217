"""Times the History page against a generated journal (bench/scale/history_journal.py), through
the web feature's real HTTP handlers on an in-process server, signed in as an administrator:

  page       GET /history, the first page, no filter
  employee   the same, one employee's calls (the one of the newest call)
  missed     missed only
  voicemail  voicemail only
  csv        GET /history.csv: time to the first byte of the body (and the whole body, for the
             7-day period only: its size shows what streaming means)

for the default period (the last 7 days) and the longest the page allows (92 days). Each figure
is the median of --runs requests after one warm-up. Runs on whatever pbx_app is first on
sys.path, so the same script times an older checkout (PYTHONPATH=/tmp/old bench/scale/...).

    bench/scale/history_bench.py sqlite:////tmp/journal-1m.db [--periods 7,92] [--runs 5]"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # after PYTHONPATH: it may name another checkout

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

import pbx_app  # noqa: E402
from pbx_app.web.app import setup  # noqa: E402
from pbx_app.web.config import WebConfig  # noqa: E402
from pbx_app.web.signin.ratelimit import RequestRate  # noqa: E402
from pbx_app.users import UserStore  # noqa: E402

POLICY = """\
site:
  timezone: UTC
employees:
  "10000": {name: First Employee}
"""
PASSWORD = "bench-password-123"


def newest_employee(url: str) -> str:
    if url.startswith("postgres"):
        import psycopg
        with psycopg.connect(url) as db:
            return db.execute("SELECT extension FROM calls ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    import sqlite3
    db = sqlite3.connect(url.split(":", 1)[1][3:])
    return db.execute("SELECT extension FROM calls ORDER BY started_at DESC LIMIT 1").fetchone()[0]


async def timed(client: TestClient, path: str, first_byte: bool = False) -> tuple[float, int]:
    began = time.perf_counter()
    async with client.get(path) as r:
        assert r.status == 200, f"{path}: {r.status} {(await r.text())[:300]}"
        if first_byte:
            await r.content.readany()
            took = time.perf_counter() - began
            size = 0
            return took, size
        body = await r.read()
    return time.perf_counter() - began, len(body)


async def main(url: str, periods: list[int], runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pbx-hbench-"))
    (tmp / "policy.yaml").write_text(POLICY)
    UserStore(tmp / "users.json").add("boss", "admin", None, PASSWORD)
    config = WebConfig(policy_path=tmp / "policy.yaml", users_path=tmp / "users.json", audit_path=tmp / "audit.jsonl",
                       announcements_dir=tmp / "sounds", database_url=url)
    webapp = web.Application()
    state = setup(webapp, config)
    state.api_rate = RequestRate(rate=1e9, burst=1e9)  # the bench measures the reads, not the budget
    client = TestClient(TestServer(webapp))
    await client.start_server()
    try:
        form = await (await client.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        r = await client.post("/login", data={"name": "boss", "password": PASSWORD, "csrf_token": token})
        assert r.status == 200, await r.text()
        ext = newest_employee(url)
        today = date.today()
        print(f"pbx_app from {Path(pbx_app.__file__).parent}; {url}; median of {runs} after a warm-up (ms)")
        print(f"{'period':>7} {'page':>8} {'employee':>9} {'missed':>8} {'voicemail':>10} {'csv 1st B':>10} {'csv all':>9} {'csv MB':>7}")
        for days in periods:
            q = f"from={(today - timedelta(days=days - 1)).isoformat()}&to={today.isoformat()}"
            cases = {"page": f"/history?{q}", "employee": f"/history?{q}&employee={ext}",
                     "missed": f"/history?{q}&missed=1", "voicemail": f"/history?{q}&voicemail=1"}
            figures = {}
            for name, path in cases.items():
                await timed(client, path)
                figures[name] = statistics.median([(await timed(client, path))[0] for _ in range(runs)])
            await timed(client, f"/history.csv?{q}", first_byte=True)
            figures["csv"] = statistics.median([(await timed(client, f"/history.csv?{q}", first_byte=True))[0]
                                                for _ in range(runs)])
            whole, size = await timed(client, f"/history.csv?{q}") if days <= 7 else (float("nan"), 0)
            print(f"{days:>5} d {figures['page'] * 1000:8.0f} {figures['employee'] * 1000:9.0f} "
                  f"{figures['missed'] * 1000:8.0f} {figures['voicemail'] * 1000:10.0f} {figures['csv'] * 1000:10.0f} "
                  f"{whole * 1000:9.0f} {size / 1e6:7.1f}", flush=True)
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        await client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--periods", default="7,92", help="days, comma-separated (7: the default period, 92: the longest)")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    asyncio.run(main(a.url, [int(d) for d in a.periods.split(",")], a.runs))
