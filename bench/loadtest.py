"""Load benchmark: the app's "employee does not answer → forward to a colleague who answers"
flow against the same flow in plain dialplan (dialplan/bench.conf), on the same Asterisk, in the
same run: with one call engine ("app") and with two ("app×2", sharing the calls by claiming them).
SIPp plays the callers and the phones. Prints a markdown table; see bench/README.md.

`--cluster`: instead, the same app flow through Kamailio (scripts/cluster) with one Asterisk node
in service, then with two, at the same rates: failed calls, forward delay and CPU per call of
each process (Kamailio, each node, the engines).

Never run in CI: it holds the test-bed lock and restarts the shared Asterisk."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterable

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from traces import forward_delays, percentile  # noqa: E402

TESTBED = REPO / "scripts" / "testbed"
CLUSTER = REPO / "scripts" / "cluster"
CLUSTER_DIR = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "cluster"
FRONT_SIP = "127.0.0.10:5060"
NODE_ARI = {"a": "http://127.0.0.11:8088", "b": "http://127.0.0.12:8088"}
LOCK = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "testbed.lock"
ARI_URL = os.environ.get("PBX_ARI_URL", "http://127.0.0.1:8088")
ARI_USER = os.environ.get("PBX_ARI_USER", "pbx_app")
ARI_PASSWORD = os.environ.get("PBX_ARI_PASSWORD", "pbx_app_secret")
CLK_TCK = os.sysconf("SC_CLK_TCK")

EMPLOYEE, COLLEAGUE = "101", "102"
APP_CALLER_IP, BASELINE_CALLER_IP = "127.0.0.1", "127.0.0.3"
AGI_CALLER_IP = "127.0.0.5"  # endpoint bench-agi → pbx-bench-agi → the FastAGI context
# The mobile flow: the employee's desk and mobile ring together (the mobile through a Local channel
# into dialplan/pbx_external.conf and the trunk carrier-out, whose far end is SIPp here).
CARRIER_OUT = ("127.0.0.8", "5070")
MOBILE_LEG = "Local/{employee}*0*0*c*79005550101*carrier-out@pbx-external/n"  # external_leg.dial_string

POLICY = """
employees:
  "{employee}": {{name: Bench Employee, endpoint: PJSIP/{employee}, ring_time: {ring},
          on_no_answer: {{action: forward, to: "{colleague}", announcement: none}}}}
  "{colleague}": {{name: Bench Colleague, endpoint: PJSIP/{colleague}, ring_time: 10}}
"""
# The same, the employee's mobile ringing with the desk (the extra leg's cost).
MOBILE_POLICY = POLICY.replace("endpoint: PJSIP/{employee},", f'endpoint: "PJSIP/{{employee}}&{MOBILE_LEG}",')


# ---- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def asterisk_pid() -> int:
    out = subprocess.run([str(TESTBED), "status"], capture_output=True, text=True).stdout
    return int(out.split()[-1])


def testbed(*args: str) -> None:
    subprocess.run([str(TESTBED), *args], check=True, capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Phones register as the test bed's do (tests/support/sipp.py): from 127.0.0.21 with the test
# bed's passwords; the calls are served out of call by the bench scenario.
PHONES_IP = "127.0.0.21"
PHONE_MAIN = HERE.parent / "tests" / "sipp" / "phone.xml"


def phone(pdir: Path, name: str, ext: str, scenario: str, values: dict, media_port: int, calls: int,
          registrar: str = "127.0.0.1:5060") -> "Sipp":
    text = (HERE / "sipp" / scenario).read_text()
    for key, value in values.items():
        text = text.replace(f"[{key}]", str(value))
    calls_file = pdir / f"{name}-calls.xml"
    calls_file.write_text(text)
    port = 5000 + int(ext)
    main = {"ext": ext, "secret": f"testbed-{ext}-secret", "contact": f"<sip:{ext}@{PHONES_IP}:{port}>",
            "clear": "*", "expires": 300, "calls": calls}
    return Sipp(pdir, name, str(PHONE_MAIN), main, [registrar, "-oocsf", str(calls_file), "-i", PHONES_IP,
                                                     "-p", str(port), "-mi", PHONES_IP, "-mp", str(media_port), "-m", "1"])


class Sipp:
    def __init__(self, workdir: Path, name: str, scenario: str, values: dict, args: list[str]):
        text = (HERE / "sipp" / scenario).read_text()
        for key, value in values.items():
            text = text.replace(f"[{key}]", str(value))
        path = workdir / f"{name}.xml"
        path.write_text(text)
        self.name = name
        self.trace = workdir / f"{name}.msg.log"
        self.stats = workdir / f"{name}.stat.csv"
        cmd = [shutil.which("sipp") or "sipp", *args, "-sf", str(path), "-nostdin", "-nd",
               "-trace_stat", "-stf", str(self.stats), "-fd", "1",
               "-trace_err", "-error_file", str(workdir / f"{name}.err.log")]
        if name != "callers":  # the phones' traces give the forward delay; the callers' is not needed
            cmd += ["-trace_msg", "-message_file", str(self.trace)]
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=open(workdir / f"{name}.stderr", "w"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def totals(self) -> dict[str, int]:
        """Cumulative counters from SIPp's last statistics line."""
        lines = self.stats.read_text().splitlines() if self.stats.exists() else []
        if len(lines) < 2:
            return {}
        head = lines[0].rstrip(";").split(";")
        last = lines[-1].rstrip(";").split(";")
        row = dict(zip(head, last))
        return {k: int(row.get(f"{k}(C)", 0) or 0) for k in ("OutgoingCall", "IncomingCall", "SuccessfulCall", "FailedCall")}


class AppProcess:
    """``engines`` call engines (`pbx-app engine`), each its own ARI app, spool and /health port,
    sharing one journal database as engines of one site do. ``command="agi"``: FastAGI servers
    (`pbx-app agi`, /health on PBX_ENGINE_BIND) instead."""

    def __init__(self, workdir: Path, policy: Path, profile: bool = False, entry: str | None = None, engines: int = 1,
                 command: str = "engine"):
        self.ports = [free_port() for _ in range(engines)]
        self.procs = []
        self.log = workdir / "app.log"
        for n, port in enumerate(self.ports, 1):
            env = {**os.environ, "PBX_ARI_URL": ARI_URL, "PBX_ARI_USER": ARI_USER, "PBX_ARI_PASSWORD": ARI_PASSWORD,
                   "PBX_ENGINE_NAME": f"bench{n}", "PBX_ENGINE_BIND": f"127.0.0.1:{port}", "PBX_MAX_CALLS": "0",
                   "PBX_DATABASE_URL": f"sqlite:///{workdir}/journal.db", "PBX_SPOOL_DIR": str(workdir / f"spool{n}")}
            if command == "agi":
                env.update(PBX_WEB_BIND=f"127.0.0.1:{port}", PBX_AGI_BIND=f"127.0.0.1:{4572 + n}",
                           PBX_USERS=str(workdir / "users.json"), PBX_AUDIT_LOG=str(workdir / "audit.jsonl"),
                           PBX_AGI_SECRET_FILE=str(LOCK.parent / "pbx_agi_secret.conf"))  # scripts/testbed made it
            profiler = ["-m", "cProfile", "-o", str(workdir / f"app{n}.prof")] if profile else []
            main = [entry] if entry else ["-m", "pbx_app"]
            self.procs.append(subprocess.Popen(
                [str(REPO / ".venv/bin/python"), *profiler, *main, command, "--policy", str(policy)],
                cwd=REPO, env=env, stdout=open(workdir / f"app{n}.log", "w"), stderr=subprocess.STDOUT))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def _get(self, port: int, path: str, as_json: bool = True):
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    return await r.json() if as_json else await r.text()
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            return None

    async def health(self) -> dict | None:
        """The engines' /health together: ok when every one is; calls in progress added up."""
        found = [await self._get(port, "/health") for port in self.ports]
        if any(h is None for h in found):
            return None
        return {"status": "ok" if all(h.get("status") == "ok" for h in found) else "unhealthy",
                "calls_in_progress": sum(h.get("calls_in_progress", 0) for h in found)}

    async def metrics(self) -> list[str]:
        return [await self._get(port, "/metrics", as_json=False) or "" for port in self.ports]

    async def ready(self) -> None:
        for _ in range(200):
            h = await self.health()
            if h and h.get("status") == "ok":
                return
            if any(p.poll() is not None for p in self.procs):
                raise SystemExit(f"an engine exited, see {self.log.parent}/app*.log")
            await asyncio.sleep(0.1)
        raise SystemExit(f"the engines did not get healthy, see {self.log.parent}/app*.log")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class WebLoad:
    """`pbx-app web` with a signed-in employee asking for the employees list on ``connections``
    connections as fast as it answers: the page under load while the engines carry calls. The
    clients run in a process of their own at the lowest CPU priority: real visitors' browsers
    are not on the PBX, so their CPU must not be counted against the calls."""

    def __init__(self, workdir: Path, policy: Path, connections: int = 8):
        self.port = free_port()
        self.connections = connections
        self.served = 0
        self.count_file = workdir / "web-requests.txt"
        self.env = {**os.environ, "PBX_WEB_BIND": f"127.0.0.1:{self.port}", "PBX_POLICY": str(policy),
                    "PBX_USERS": str(workdir / "users.json"), "PBX_AUDIT_LOG": str(workdir / "audit.jsonl"),
                    "PBX_ANNOUNCEMENTS_DIR": str(workdir / "sounds")}
        secret = workdir / "bench-password"
        secret.write_text("bench-password-123\n")
        subprocess.run([str(REPO / ".venv/bin/pbx-app"), "user", "add", "bench", "--role", "employee",
                        "--extension", EMPLOYEE, "--password-file", str(secret)], env=self.env, check=True,
                       capture_output=True)
        self.proc = subprocess.Popen([str(REPO / ".venv/bin/pbx-app"), "web"], cwd=REPO, env=self.env,
                                     stdout=open(workdir / "web.log", "w"), stderr=subprocess.STDOUT)
        self.clients: subprocess.Popen | None = None

    async def start(self) -> None:
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"http://127.0.0.1:{self.port}/login") as r:
                        if r.status == 200:
                            break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        self.clients = subprocess.Popen(
            ["nice", "-n", "19", str(REPO / ".venv/bin/python"), str(HERE / "webload.py"), str(self.port),
             str(self.connections), str(self.count_file)], stderr=subprocess.STDOUT,
            stdout=open(self.count_file.with_suffix(".log"), "w"))

    async def stop(self) -> None:
        if self.clients is not None and self.clients.poll() is None:
            self.clients.terminate()
            self.clients.wait()
            self.served = int(self.count_file.read_text() or 0) if self.count_file.exists() else 0
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def count_calls(phase, callers: "Sipp") -> None:
    """The phase's attempted, succeeded and failed calls, from the callers' SIPp statistics."""
    totals = callers.totals()
    phase.attempted = totals.get("OutgoingCall", 0)
    phase.succeeded = totals.get("SuccessfulCall", 0)
    phase.failed = totals.get("FailedCall", 0)


def ari_requests(metrics_texts: list[str]) -> float:
    """pbx_ari_requests_total summed over the engines and the routes."""
    total = 0.0
    for text in metrics_texts:
        for line in text.splitlines():
            if line.startswith("pbx_ari_requests_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


# ---- one phase ----------------------------------------------------------------------------------


@dataclass
class Phase:
    flow: str  # "app" or "baseline"
    rate: int
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    delays: list[float] = field(default_factory=list)
    asterisk_cpu: float = 0.0
    app_cpu: float | None = None
    ari_per_call: float | None = None
    app_peak_rss_mb: float | None = None
    peak_in_progress: int | None = None
    rss_at_peak_mb: float | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    leftovers: str = ""

    def row(self) -> str:
        med = statistics.median(self.delays) * 1000 if self.delays else float("nan")
        p99 = percentile(self.delays, 0.99) * 1000
        app = (f"{self.app_cpu * 1000:.2f} ms | {self.ari_per_call:.1f} | {max(r for _, r in self.rss_samples):.0f} MB "
               f"({self.rss_at_peak_mb:.0f} MB at {self.peak_in_progress} calls)"
               if self.app_cpu is not None else "— | — | —")
        return (f"| {self.rate} | {self.flow} | {self.attempted} | {self.succeeded} | {self.failed} | "
                f"{med:.1f} | {p99:.1f} | {self.asterisk_cpu * 1000:.1f} ms | {app} | {self.leftovers or 'none'} |")


async def ari_request(method: str, path: str):
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth(ARI_USER, ARI_PASSWORD)}) as s:
        async with s.request(method, f"{ARI_URL}/ari{path}") as r:
            return await r.json() if r.content_type == "application/json" else None


async def ari_get(path: str):
    return await ari_request("GET", path)


async def wait_quiet(timeout: float = 60) -> tuple[list, list]:
    deadline = time.monotonic() + timeout
    while True:
        channels, bridges = await ari_get("/channels"), await ari_get("/bridges")
        if (not channels and not bridges) or time.monotonic() > deadline:
            return channels, bridges
        await asyncio.sleep(0.5)


async def run_phase(flow: str, rate: int, duration: float, args, workdir: Path, policy: Path) -> Phase:
    phase = Phase(flow, rate)
    calls = int(rate * duration)
    pdir = workdir / f"{flow}-{rate}"
    pdir.mkdir()
    app = None
    if flow == "mobile":
        policy = policy.with_name("policy-mobile.yaml")
    if flow in ENGINES:
        app = AppProcess(pdir, policy, args.profile, args.app_entry, engines=ENGINES[flow],
                         command="agi" if flow == "agi" else "engine")
        await app.ready()
    try:
        return await _measure(phase, flow, rate, duration, calls, args, pdir, policy, app)
    finally:
        if app:
            app.stop()  # also when the phase failed: a stray engine would claim the next phase's calls


async def _measure(phase: Phase, flow: str, rate: int, duration: float, calls: int, args, pdir: Path, policy: Path,
                   app: "AppProcess | None") -> Phase:
    web = WebLoad(pdir, policy) if flow == "app+web" else None
    try:
        if web:
            await web.start()
        return await _calls(phase, flow, rate, duration, calls, args, pdir, app, web)
    finally:
        if web:
            await web.stop()


async def _calls(phase: Phase, flow: str, rate: int, duration: float, calls: int, args, pdir: Path,
                 app: "AppProcess | None", web: "WebLoad | None") -> Phase:
    many = ["-m", str(calls)]
    employee = phone(pdir, "employee", EMPLOYEE, "phone_ring_forever.xml", {}, 41000, calls)
    colleague = phone(pdir, "colleague", COLLEAGUE, "phone_answer.xml", {"answer_delay": args.answer_ms}, 42000, calls)
    ip = {"baseline": BASELINE_CALLER_IP, "agi": AGI_CALLER_IP}.get(flow, APP_CALLER_IP)
    carrier = None
    if flow == "mobile":  # the mobile rings out too, never answers: cancelled with the desk
        carrier = Sipp(pdir, "carrier", "phone_ring_forever.xml", {},
                       ["-i", CARRIER_OUT[0], "-p", CARRIER_OUT[1], "-mi", CARRIER_OUT[0], "-mp", "44000",
                        "-m", str(calls)])
    await asyncio.sleep(0.5)
    ast = asterisk_pid()
    ast_cpu0 = cpu_seconds(ast)
    app_cpu0 = sum(map(cpu_seconds, app.pids)) if app else 0.0
    requests0 = ari_requests(await app.metrics()) if app else 0.0
    callers = Sipp(pdir, "callers", "caller.xml", {"talk": args.talk_ms},
                   ["127.0.0.1:5060", "-s", EMPLOYEE, "-i", ip, "-p", "5290", "-mi", ip, "-mp", "43000",
                    "-r", str(rate), "-rp", "1000", "-l", str(max(5000, calls)), *many,
                    "-recv_timeout", "30000", "-timeout", f"{int(duration + 90)}s"])
    peak = (0, 0.0)
    started = time.monotonic()
    while callers.proc.poll() is None:
        await asyncio.sleep(0.5)
        if app:
            h = await app.health()
            rss = sum(memory_kb(pid, "VmRSS") for pid in app.pids) / 1024
            phase.rss_samples.append((time.monotonic() - started, rss))
            if h and h["calls_in_progress"] >= peak[0]:
                peak = (h["calls_in_progress"], rss)
    phase.asterisk_cpu = cpu_seconds(ast) - ast_cpu0
    if app:
        phase.app_cpu = sum(map(cpu_seconds, app.pids)) - app_cpu0
        phase.app_peak_rss_mb = sum(memory_kb(pid, "VmHWM") for pid in app.pids) / 1024
        phase.peak_in_progress, phase.rss_at_peak_mb = peak
    if web:
        await web.stop()  # before the phones stop: the page was loaded for the calls' whole span
        print(f"  the page answered {web.served} GET /api/employees during the calls", file=sys.stderr)
    await asyncio.sleep(1)
    for p in (employee, colleague, *([carrier] if carrier else [])):
        p.stop()
    count_calls(phase, callers)
    phase.asterisk_cpu /= max(1, phase.attempted)
    if app:
        phase.app_cpu /= max(1, phase.attempted)
        phase.ari_per_call = (ari_requests(await app.metrics()) - requests0) / max(1, phase.attempted)
    phase.delays = forward_delays(employee.trace, colleague.trace)
    channels, bridges = await wait_quiet()
    left = []
    if channels:
        left.append(f"{len(channels)} channels")
    if bridges:
        left.append(f"{len(bridges)} bridges")
    for ch in channels:  # calls a failed SIPp caller abandoned without a BYE: end them for the next phase
        await ari_request("DELETE", f"/channels/{ch['id']}")
    if app:
        h = await app.health() or {}
        if h.get("calls_in_progress"):
            left.append(f"{h['calls_in_progress']} flows")
        for n in range(1, len(app.pids) + 1):
            subs = await ari_get(f"/applications/pbx_app-bench{n}")
            if subs.get("channel_ids"):
                left.append(f"{len(subs['channel_ids'])} subscriptions")
        (pdir / "metrics.txt").write_text("\n".join(await app.metrics()))
    phase.leftovers = ", ".join(left)
    return phase


HEADER = ("| calls/s | flow | attempted | succeeded | failed | forward delay median (ms) | p99 (ms) "
          "| Asterisk CPU/call | app CPU/call | ARI requests/call | app RSS max (at the most calls in progress) | left after |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
# The flows that run engines, and how many.
ENGINES = {"app": 1, "app×2": 2, "app+web": 1, "agi": 1, "mobile": 1}  # app+web: one engine, the page hammered meanwhile  # agi: one FastAGI server (dialplan/pbx_agi.conf)


async def main_async(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="pbx-bench-"))
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.format(employee=EMPLOYEE, colleague=COLLEAGUE, ring=args.ring))
    policy.with_name("policy-mobile.yaml").write_text(MOBILE_POLICY.format(employee=EMPLOYEE, colleague=COLLEAGUE,
                                                                           ring=args.ring))
    print(f"bench: working in {workdir}", file=sys.stderr)
    testbed("restart")
    testbed("cli", f"dialplan set global BENCH_RINGTIME {args.ring}")
    testbed("cli", f"dialplan set global BENCH_COLLEAGUE {COLLEAGUE}")
    phases = []
    try:
        if args.soak:
            phase = await run_phase(args.flows[0], args.rates[0], args.soak, args, workdir, policy)
            print_table(HEADER, [phase.row()])
            print_soak(phase)
            return 0 if phase.failed == 0 else 1
        for rate in args.rates:
            for flow in args.flows:
                print(f"bench: {flow} at {rate} calls/s for {args.duration} s", file=sys.stderr)
                phase = await run_phase(flow, rate, args.duration, args, workdir, policy)
                print("  " + phase.row(), file=sys.stderr)
                phases.append(phase)
                await asyncio.sleep(2)
    finally:
        testbed("stop")
    print_table(HEADER, (phase.row() for phase in phases))
    return 0 if all(p.failed == 0 and not p.leftovers for p in phases) else 1


def print_table(header: str, rows: Iterable[str]) -> None:
    """A markdown table on stdout (the figures; progress goes to stderr): bench/faults too."""
    print(header)
    for row in rows:
        print(row)


def holding_testbed_lock(who: str, run: Callable[[], Awaitable[int]]) -> int:
    """Runs ``run()`` holding the test bed's lock, waiting for the tests that hold it (bench/faults too)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{who}: waiting for the test-bed lock {LOCK} (tests are running)", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        return asyncio.run(run())


def print_soak(phase: Phase) -> None:
    samples = phase.rss_samples
    if not samples:
        return
    warm = [rss for t, rss in samples if 30 <= t <= 60] or [samples[0][1]]
    last = [rss for t, rss in samples if t >= samples[-1][0] - 30]
    print(f"\nRSS over the soak (MB): after warm-up {statistics.median(warm):.1f}, "
          f"last 30 s {statistics.median(last):.1f}, min {min(r for _, r in samples):.1f}, "
          f"max {max(r for _, r in samples):.1f}")
    step = max(1, len(samples) // 12)
    print("t (s) → RSS (MB): " + ", ".join(f"{t:.0f}→{r:.1f}" for t, r in samples[::step]))


# ---- --cluster: one node vs two behind Kamailio -------------------------------------------------


def cluster(*args: str) -> str:
    env = {**os.environ, "PBX_TESTBED_LOCK_HELD": "1"}  # main() holds it
    return subprocess.run([str(CLUSTER), *args], check=True, capture_output=True, text=True, env=env).stdout


def process_tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            out += process_tree(int(child))
    return out


def cluster_processes() -> dict[str, list[int]]:
    """The processes whose CPU is reported, by role."""
    status = cluster("status")
    found: dict[str, list[int]] = {}
    for line in status.splitlines():
        if line.startswith("node ") and "running pid" in line:
            found[f"node {line.split()[1].rstrip(':')}"] = [int(line.split("pid ")[1].split()[0])]
    kamailio = int((CLUSTER_DIR / "kamailio" / "kamailio.pid").read_text())
    found["Kamailio"] = process_tree(kamailio)
    found["engines"] = process_tree(int((CLUSTER_DIR / "app" / "run.pid").read_text()))
    return found


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


async def node_channels(node: str) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth(ARI_USER, ARI_PASSWORD)}) as s:
        try:
            async with s.get(f"{NODE_ARI[node]}/ari/channels") as r:
                return len(await r.json())
        except aiohttp.ClientError:
            return 0


async def both_nodes_served(timeout: float = 60) -> None:
    """Node b back: Kamailio's probes bring it into service and both engines reconnect to it."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            healths = []
            for port in (8091, 8092):
                try:
                    async with s.get(f"http://127.0.0.10:{port}/health") as r:
                        healths.append(await r.json())
                except aiohttp.ClientError:
                    healths.append({})
            if all(all((h.get("ari_nodes") or {"-": False}).values()) for h in healths):
                await asyncio.sleep(3)  # a probe or two: Kamailio sends to b again
                return
            await asyncio.sleep(0.5)
    raise SystemExit("bench: node b did not come back into service")


async def run_cluster_phase(nodes: int, rate: int, duration: float, args, workdir: Path) -> tuple[Phase, dict[str, float]]:
    phase = Phase(f"{nodes} node{'s' if nodes > 1 else ''}", rate)
    calls = int(rate * duration)
    pdir = workdir / f"nodes{nodes}-{rate}"
    pdir.mkdir()
    many = ["-m", str(calls)]
    employee = phone(pdir, "employee", EMPLOYEE, "phone_ring_forever.xml", {}, 41000, calls)
    colleague = phone(pdir, "colleague", COLLEAGUE, "phone_answer.xml", {"answer_delay": args.answer_ms}, 42000, calls)
    await asyncio.sleep(0.5)
    procs = cluster_processes()
    cpu0 = {role: cpu_of(pids) for role, pids in procs.items()}
    callers = Sipp(pdir, "callers", "caller.xml", {"talk": args.talk_ms},
                   [FRONT_SIP, "-s", EMPLOYEE, "-i", APP_CALLER_IP, "-p", "5290", "-mi", APP_CALLER_IP, "-mp", "43000",
                    "-r", str(rate), "-rp", "1000", "-l", str(max(5000, calls)), *many,
                    "-recv_timeout", "30000", "-timeout", f"{int(duration + 90)}s"])
    while callers.proc.poll() is None:
        await asyncio.sleep(0.5)
    cpu = {role: cpu_of(procs[role]) - cpu0[role] for role in procs}
    await asyncio.sleep(1)
    for p in (employee, colleague):
        p.stop()
    count_calls(phase, callers)
    phase.delays = forward_delays(employee.trace, colleague.trace)
    await asyncio.sleep(2)
    left = sum([await node_channels(n) for n in NODE_ARI])
    phase.leftovers = f"{left} channels" if left else ""
    return phase, {role: seconds / max(1, phase.attempted) for role, seconds in cpu.items()}


async def main_cluster(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="pbx-bench-cluster-"))
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.format(employee=EMPLOYEE, colleague=COLLEAGUE, ring=args.ring))
    policy.with_name("policy-mobile.yaml").write_text(MOBILE_POLICY.format(employee=EMPLOYEE, colleague=COLLEAGUE,
                                                                           ring=args.ring))
    print(f"bench: working in {workdir}", file=sys.stderr)
    testbed("stop")
    env_policy = os.environ.get("PBX_POLICY")
    os.environ["PBX_POLICY"] = str(policy)
    rows = []
    try:
        subprocess.run([str(CLUSTER), "start"], check=True, env={**os.environ, "PBX_TESTBED_LOCK_HELD": "1",
                                                                 "PBX_CLUSTER_FRESH": "1"})
        for rate in args.rates:
            for nodes in (1, 2):
                if nodes == 1:
                    cluster("node-stop", "b")
                    await asyncio.sleep(4)  # Kamailio's probes take node b out of service
                else:
                    cluster("node-start", "b")
                    await both_nodes_served()
                print(f"bench: {nodes} node(s) at {rate} calls/s for {args.duration} s", file=sys.stderr)
                phase, cpu = await run_cluster_phase(nodes, rate, args.duration, args, workdir)
                rows.append((phase, cpu))
                print("  " + cluster_row(phase, cpu), file=sys.stderr)
    finally:
        subprocess.run([str(CLUSTER), "stop"], env={**os.environ, "PBX_TESTBED_LOCK_HELD": "1"})
        if env_policy is None:
            os.environ.pop("PBX_POLICY", None)
    print_table(CLUSTER_HEADER, (cluster_row(phase, cpu) for phase, cpu in rows))
    return 0 if all(p.failed == 0 and not p.leftovers for p, _ in rows) else 1


CLUSTER_HEADER = ("| calls/s | Asterisk nodes | attempted | succeeded | failed | forward delay median (ms) | p99 (ms) "
                  "| CPU/call: Kamailio | node a | node b | engines (2, + web) | left after |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|---|")


def cluster_row(phase: Phase, cpu: dict[str, float]) -> str:
    med = statistics.median(phase.delays) * 1000 if phase.delays else float("nan")
    p99 = percentile(phase.delays, 0.99) * 1000

    def ms(role: str) -> str:
        return f"{cpu[role] * 1000:.1f} ms" if role in cpu else "—"

    return (f"| {phase.rate} | {phase.flow} | {phase.attempted} | {phase.succeeded} | {phase.failed} | {med:.1f} | {p99:.1f} "
            f"| {ms('Kamailio')} | {ms('node a')} | {ms('node b')} | {ms('engines')} | {phase.leftovers or 'none'} |")


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--rates", default="20,50,100,150", help="calls per second, comma separated")
    p.add_argument("--duration", type=float, default=30, help="seconds of calls at each rate")
    p.add_argument("--ring", type=int, default=2, help="the employee's ring time (s)")
    p.add_argument("--talk-ms", type=int, default=1000, help="how long the caller talks to the colleague")
    p.add_argument("--answer-ms", type=int, default=200, help="how long the colleague's phone rings first")
    p.add_argument("--profile", action="store_true", help="run the app under cProfile (app.prof in each phase's folder)")
    p.add_argument("--app-entry", help="a Python script to run instead of `-m pbx_app` (experiments: patch, then call pbx_app.cli.main)")
    p.add_argument("--soak", type=float, default=0, help="instead: run one flow (app, or the one --flows names) alone at the first rate for this many seconds and report its memory over time")
    p.add_argument("--flows", help="phases at each rate: baseline, app (one engine), app×2 (two), "
                                   "app+web (one engine, 8 connections on the page's API meanwhile), agi (FastAGI mode), "
                                   "mobile (one engine, the employee's mobile ringing with the desk through the trunk; "
                                   "not in the default set); "
                                   "all of them unless given")
    p.add_argument("--cluster", action="store_true",
                   help="instead: one Asterisk node vs two behind Kamailio (scripts/cluster) at each rate")
    args = p.parse_args()
    if args.soak and args.flows and "," in args.flows:
        p.error("--soak runs one flow: name one with --flows")
    args.flows = (args.flows or ("app" if args.soak else "baseline,app,app×2,app+web,agi")).split(",")
    args.rates = [int(r) for r in args.rates.split(",")]
    return holding_testbed_lock("bench", lambda: main_cluster(args) if args.cluster else main_async(args))

if __name__ == "__main__":
    sys.exit(main())
