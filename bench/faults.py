"""Faults under load (issue 29): steady forward-flow traffic through Kamailio (scripts/cluster:
two Asterisk nodes, two engines, PostgreSQL) while one fault at a time is injected, then what the
callers got and what the records hold. Prints a markdown table (docs/reliability.md).

Each phase: the callers dial 101 at --rate calls/s (101 rings out after 2 s, the call is
forwarded to 102, who answers after 0.2 s; 1 s talk); at 5 s the fault is injected, it is undone
after its length, and traffic goes on 10 s more. Then, counted per phase:
- calls attempted / answered (SIPp's callers: the 200 OK came) / not;
- journal rows lost: calls whose CDR (read on the nodes themselves, the truth) exists but the
  journal in PostgreSQL does not have, and calls still "in progress" in the journal at the end;
- CDR rows missing: rows in a node's own master.db that PostgreSQL does not have at the end;
- leftovers: channels and bridges on the nodes, channels the engines' Stasis apps still hold;
- recovery: the fault's own figure (see each fault).

Never run in CI (it holds the test-bed lock for minutes); tests/integration/test_faults.py has
the short versions."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from loadtest import (APP_CALLER_IP, ARI_PASSWORD, ARI_USER, CLUSTER, CLUSTER_DIR, COLLEAGUE, EMPLOYEE,  # noqa: E402
                      FRONT_SIP, NODE_ARI, PHONES_IP, POLICY, Sipp, both_nodes_served, cluster, count_calls,
                      holding_testbed_lock, phone, print_table, process_tree, testbed)
from tests.support.cluster import Cluster, active_nodes, engines_health  # noqa: E402
from traces import forward_delays  # noqa: E402

SPOOL_MOUNT = CLUSTER_DIR / "faults-spool"  # a small tmpfs the "disk full" fault fills


@dataclass
class Row:
    fault: str
    holds: str
    attempted: int = 0
    answered: int = 0
    failed: int = 0
    journal_lost: int = 0
    left_open: int = 0
    cdr_missing: int = 0
    leftovers: str = ""
    recovery: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"| {self.fault} | {self.attempted} | {self.answered} | {self.failed} | {self.journal_lost} "
                f"| {self.left_open} | {self.cdr_missing} | {self.leftovers or 'none'} | {self.recovery} "
                f"| {'; '.join(self.notes)} |")


HEADER = ("| fault (during traffic) | attempted | answered | not answered | journal rows lost | left in progress "
          "| CDR rows missing in PostgreSQL | leftovers (channels, bridges, Stasis) | recovery | notes |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


# ---- what the records hold ------------------------------------------------------------------------


def pg_url() -> str:
    for line in cluster("env").splitlines():
        if line.startswith("PBX_DATABASE_URL="):
            return line.split("=", 1)[1]
    raise SystemExit("bench: no PBX_DATABASE_URL in scripts/cluster env")


def node_cdr(since: datetime) -> set[tuple[str, int, str]]:
    """(uniqueid, sequence, linkedid) of every CDR row each node wrote on its own disk since ``since``."""
    out = set()
    local = since.astimezone().strftime("%Y-%m-%d %H:%M:%S")  # cdr_sqlite3_custom: local time, as text
    for node in ("a", "b"):
        path = CLUSTER_DIR / f"node-{node}" / "log" / "master.db"
        if not path.exists():
            continue
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            out |= {(u, int(s), l) for u, s, l in db.execute(
                "SELECT uniqueid, sequence, linkedid FROM cdr WHERE calldate >= ?", (local,))}
        finally:
            db.close()
    return out


def pg_cdr(url: str, since: datetime) -> set[tuple[str, int]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return {(u, s) for u, s in conn.execute("SELECT uniqueid, sequence FROM cdr WHERE calldate >= %s",
                                                 (since - timedelta(seconds=1),))}


def journal_calls(url: str, since: datetime) -> dict[str, str | None]:
    """channel id (= the CDR's linkedid) → result (None: still in progress) of the calls the
    journal has since ``since``."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        return dict(conn.execute("SELECT channel_id, result FROM calls WHERE started_at >= %s",
                                 (since - timedelta(seconds=1),)).fetchall())


async def ari(node: str, path: str):
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth(ARI_USER, ARI_PASSWORD)},
                                     timeout=aiohttp.ClientTimeout(total=5)) as s:
        try:
            async with s.get(f"{NODE_ARI[node]}/ari{path}") as r:
                return await r.json()
        except (aiohttp.ClientError, TimeoutError):
            return None


async def leftovers(wait: float = 30) -> str:
    """Channels, bridges and Stasis-held channels left on the nodes once the calls are over."""
    deadline = time.monotonic() + wait
    while True:
        channels = bridges = held = 0
        for node in NODE_ARI:
            channels += len(await ari(node, "/channels") or [])
            bridges += len(await ari(node, "/bridges") or [])
            for app in await ari(node, "/applications") or []:
                if app["name"].startswith("pbx"):
                    held += len(app.get("channel_ids", [])) + len(app.get("bridge_ids", []))
        if not (channels or bridges or held) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    parts = [f"{n} {what}" for n, what in ((channels, "channels"), (bridges, "bridges"), (held, "in Stasis")) if n]
    return ", ".join(parts)


async def until(check, timeout: float, every: float = 0.1) -> float | None:
    """Seconds until ``check()`` is true, or None after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - began
        await asyncio.sleep(every)
    return None


# ---- the faults -----------------------------------------------------------------------------------


class Fault:
    name = ""
    holds = ""
    length = 0.0

    async def inject(self, row: Row) -> None: ...

    async def undo(self, row: Row) -> None: ...

    async def settle(self, row: Row, url: str, since: datetime) -> None:
        """After the traffic: waits for the fault's own recovery."""


class PostgresAway(Fault):
    name, holds = "PostgreSQL stopped {length:.0f} s, then back", "0 journal rows lost, 0 CDR rows missing"

    async def inject(self, row):
        cluster("pg-stop")

    async def undo(self, row):
        cluster("pg-start")
        self.back = time.monotonic()

    async def settle(self, row, url, since):
        def caught_up():
            try:
                local = node_cdr(since)
                return {(u, s) for u, s, _ in local} <= pg_cdr(url, since)
            except psycopg.Error:
                return False
        waited = await until(caught_up, 120, every=0.5)
        row.recovery = (f"CDR caught up {time.monotonic() - self.back:.1f} s after PostgreSQL returned"
                        if waited is not None else "CDR not caught up within 120 s")


class NodeKilled(Fault):
    name, holds = "node a SIGKILLed (kept down)", "node b's calls unaffected; new calls to b within 2 s"

    def __init__(self, lost_after: float):
        self.lost_after = lost_after

    async def inject(self, row):
        pids = [line.split("pid ")[1].split()[0] for line in cluster("status").splitlines()
                if line.startswith("node a:") and "running pid" in line]
        self.killed = time.monotonic()
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        out = await until(lambda: "a" not in active_nodes(), 30)
        self.out_after = out
        row.notes.append(f"out of Kamailio's set {out:.1f} s after the kill" if out is not None else "never taken out")

    async def settle(self, row, url, since):
        def none_open_on_a():
            return not [c for c, r in journal_calls(url, since).items() if r is None and c.startswith("a-")]
        waited = await until(none_open_on_a, self.lost_after + 60, every=1)
        lost = sum(1 for c, r in journal_calls(url, since).items() if c.startswith("a-") and r == "failed")
        row.recovery = (f"node a's calls ended as lost {time.monotonic() - self.killed:.0f} s after the kill "
                        f"(PBX_NODE_LOST_AFTER={self.lost_after:.0f})" if waited is not None else "node a's calls still open")
        row.notes.append(f"{lost} calls of node a ended \"lost with node a\"")
        cluster("node-start", "a")
        await both_nodes_served()


class KamailioRestarted(Fault):
    name, holds = "Kamailio restarted", "calls in progress keep media and end normally; new calls answered"

    async def inject(self, row):
        began = time.monotonic()
        cluster("kamailio-restart")
        row.recovery = f"both nodes in service again {time.monotonic() - began:.1f} s after the restart began"


class SpoolDiskFull(Fault):
    name, holds = "the spool disk full {length:.0f} s", "calls go on; journal lines kept in memory, written later"

    async def inject(self, row):
        filler = SPOOL_MOUNT / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
        await asyncio.sleep(2)
        said = [h.get("journal_spool", "?") for h in await engines_health()]
        row.notes.append(f"/health during: {' / '.join(said)}")

    async def undo(self, row):
        (SPOOL_MOUNT / "filler").unlink(missing_ok=True)
        waited = await until(lambda: self._ok(), 30, every=0.2)
        row.recovery = f"lines in memory written {waited:.1f} s after space returned" if waited is not None else "still in memory after 30 s"

    @staticmethod
    async def _ok() -> bool:
        return all(h.get("journal_spool") == "ok" for h in await engines_health())


def engine_pids() -> list[int]:
    """The engine processes under `pbx-app run` (its children; the web page's is not one)."""
    run = int((CLUSTER_DIR / "app" / "run.pid").read_text())
    out = []
    for pid in process_tree(run)[1:]:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if " engine" in cmd or "PBX_ENGINE" in cmd:
            out.append(pid)
    return out or process_tree(run)[1:2]


class EngineFrozen(Fault):
    name, holds = "one engine SIGSTOPped {length:.0f} s", "its callers rescued within 3 s; it wakes without acting on them"

    async def inject(self, row):
        self.pid = engine_pids()[0]
        os.kill(self.pid, signal.SIGSTOP)

    async def undo(self, row):
        os.kill(self.pid, signal.SIGCONT)

    async def settle(self, row, url, since):
        delays = forward_delays(self.employee.trace, self.colleague.trace)
        slow = sorted(d for d in delays if d > 1.0)
        row.recovery = (f"forward delay max {max(delays):.1f} s; {len(slow)} callers waited > 1 s (rescued)"
                        if delays else "no forward measured")


class EnginesKilled(Fault):
    name, holds = "all engines killed {length:.0f} s", "calls follow the dialplan's fallback; history right afterwards"

    async def inject(self, row):
        run = int((CLUSTER_DIR / "app" / "run.pid").read_text())
        for pid in reversed(process_tree(run)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def undo(self, row):
        began = time.monotonic()
        try:  # `start` starts the engines with their policy publisher: the old one goes first
            os.kill(int((CLUSTER_DIR / "app" / "publish.pid").read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        subprocess.run([str(CLUSTER), "start"], check=True, capture_output=True,
                       env={**os.environ, "PBX_TESTBED_LOCK_HELD": "1"})
        row.recovery = f"engines serving both nodes {time.monotonic() - began:.1f} s after the restart began"

    async def settle(self, row, url, since):
        """Every call the nodes' CDR has (those the dialplan carried alone too) in the journal."""
        def complete() -> bool:
            return not {link for _, _, link in node_cdr(since)} - set(journal_calls(url, since))
        waited = await until(complete, 60, every=1)
        row.recovery += (f"; every call in history {waited:.1f} s after the traffic ended" if waited is not None
                         else "; calls still missing from history 60 s after the traffic ended")


PHONE_REGISTER = HERE.parent / "tests" / "sipp" / "phone_register.xml"


def cluster_phone(pdir: Path, name: str, ext: str, scenario: str, values: dict, media_port: int, calls: int) -> Sipp:
    """A bench phone registered with both nodes (either may ring it), as tests/support/cluster.py's."""
    ring = phone(pdir, name, ext, scenario, values, media_port, calls, registrar="127.0.0.11:5060")
    port = 5000 + int(ext)
    contact = f"<sip:{ext}@{PHONES_IP}:{port}>"
    secret = f"testbed-{ext}-secret"
    for contact_, expires in (("*", 0), (contact, 300)):
        reg = PHONE_REGISTER.read_text()
        for key, value in {"ext": ext, "secret": secret, "contact": contact_, "expires": expires}.items():
            reg = reg.replace(f"[{key}]", str(value))
        path = pdir / f"{name}-register.xml"
        path.write_text(reg)
        subprocess.run(["sipp", "127.0.0.12:5060", "-sf", str(path), "-i", PHONES_IP, "-p", str(port + 500), "-m", "1",
                        "-nostdin", "-nd", "-timeout", "5s", "-timeout_error"], cwd=pdir, capture_output=True, timeout=15)
    return ring


# ---- one phase ----------------------------------------------------------------------------------


async def run_phase(fault: Fault, rate: int, lead: float, tail: float, workdir: Path, url: str) -> Row:
    row = Row(fault.name.format(length=fault.length), fault.holds)
    duration = lead + fault.length + tail
    calls = int(rate * duration)
    pdir = workdir / fault.__class__.__name__
    pdir.mkdir()
    employee = cluster_phone(pdir, "employee", EMPLOYEE, "phone_ring_forever.xml", {}, 41000, calls)
    colleague = cluster_phone(pdir, "colleague", COLLEAGUE, "phone_answer.xml", {"answer_delay": 200}, 42000, calls)
    await asyncio.sleep(1)
    since = datetime.now(timezone.utc)
    callers = Sipp(pdir, "callers", "caller.xml", {"talk": 1000},
                   [FRONT_SIP, "-s", EMPLOYEE, "-i", APP_CALLER_IP, "-p", "5290", "-mi", APP_CALLER_IP, "-mp", "43000",
                    "-r", str(rate), "-rp", "1000", "-l", str(max(5000, calls)), "-m", str(calls),
                    "-recv_timeout", "30000", "-timeout", f"{int(duration + 90)}s"])
    fault.employee, fault.colleague = employee, colleague
    print(f"faults: {row.fault}: {calls} calls at {rate}/s", file=sys.stderr)
    await asyncio.sleep(lead)
    await fault.inject(row)
    await asyncio.sleep(fault.length)
    await fault.undo(row)
    while callers.proc.poll() is None:
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    for p in (employee, colleague):
        p.stop()
    count_calls(row, callers)
    row.answered = row.succeeded  # type: ignore[attr-defined]
    await fault.settle(row, url, since)
    row.leftovers = await leftovers()
    await asyncio.sleep(3)  # the reconciler's sweeps (PBX_SWEEP_INTERVAL=2, grace 5)
    local = node_cdr(since)
    journal = journal_calls(url, since)
    row.cdr_missing = len({(u, s) for u, s, _ in local} - pg_cdr(url, since))
    callers_legs = {link for _, _, link in local}
    row.journal_lost = len(callers_legs - set(journal))
    row.left_open = sum(1 for r in journal.values() if r is None)
    print("  " + row.line(), file=sys.stderr)
    return row


FAULTS = {"pg": lambda a: PostgresAway(), "node": lambda a: NodeKilled(a.lost_after),
          "kamailio": lambda a: KamailioRestarted(), "disk": lambda a: SpoolDiskFull(),
          "engines": lambda a: EnginesKilled(), "wedged": lambda a: EngineFrozen()}
LENGTHS = {"pg": 60.0, "node": 0.0, "kamailio": 0.0, "disk": 30.0, "engines": 20.0, "wedged": 30.0}


async def main_async(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="pbx-faults-"))
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.format(employee=EMPLOYEE, colleague=COLLEAGUE, ring=2))
    print(f"faults: working in {workdir}", file=sys.stderr)
    testbed("stop")
    SPOOL_MOUNT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(SPOOL_MOUNT)], check=True)
    settings = {"PBX_SWEEP_INTERVAL": "2", "PBX_RECONCILE_GRACE": "5", "PBX_NODE_LOST_AFTER": str(args.lost_after),
                "PBX_CLUSTER_SPOOL_DIR": str(SPOOL_MOUNT / "spool")}
    os.environ.update({"PBX_POLICY": str(policy), **settings})  # for the restarts the faults make (loadtest.cluster)
    running = Cluster(policy)
    rows = []
    try:
        running.start(**settings)
        url = pg_url()
        for name in args.faults:
            fault = FAULTS[name](args)
            fault.length = LENGTHS[name] * args.scale
            rows.append(await run_phase(fault, args.rate, 5, 10, workdir, url))
    finally:
        running.stop()
        subprocess.run(["umount", str(SPOOL_MOUNT)])
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {args.rate} calls/s, {os.cpu_count()} cores")
    print_table(HEADER, (row.line() for row in rows))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/faults", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=20, help="calls per second (20–50; lower on a busy machine)")
    p.add_argument("--faults", default="pg,node,kamailio,disk,engines,wedged", help="which, in order: " + ", ".join(FAULTS))
    p.add_argument("--scale", type=float, default=1.0, help="multiplies each fault's length (60 s, 30 s)")
    p.add_argument("--lost-after", type=float, default=30.0, help="PBX_NODE_LOST_AFTER for the run (s)")
    args = p.parse_args()
    args.faults = args.faults.split(",")
    return holding_testbed_lock("faults", lambda: main_async(args))

if __name__ == "__main__":
    sys.exit(main())
