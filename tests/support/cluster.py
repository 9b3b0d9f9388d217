"""The several-node deployment of scripts/cluster, driven from the tests: Kamailio on 127.0.0.10,
Asterisk nodes a (127.0.0.11) and b (127.0.0.12), PostgreSQL, the engines and the web page.
Callers dial Kamailio; the employees' phones are the test bed's SIPp phones on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import aiohttp
import pytest

from pbx_app.history.records import CallRecord
from pbx_app.history.database import open_store
from tests.support.sipp import ASTERISK_SIP, SipBed, Sipp

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster"
FRONT_SIP = "127.0.0.10:5060"
ENGINE_HEALTH = ("http://127.0.0.10:8091/health", "http://127.0.0.10:8092/health")
WEB = "http://127.0.0.10:8090"
CLUSTER_DIR = Path(os.environ.get("PBX_TESTBED_CACHE", "/var/cache/pbx_app")) / "cluster"
KAMAILIO_CTL = CLUSTER_DIR / "kamailio" / "ctl.sock"
NODES = {"sip:127.0.0.11:5060": "a", "sip:127.0.0.12:5060": "b"}


def now() -> datetime:
    return datetime.now(timezone.utc)


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [c for child in (task / "children").read_text().split() for c in _tree(int(child))]
        except FileNotFoundError:
            pass
    return out


def active_nodes(ctl: Path = KAMAILIO_CTL) -> set[str]:
    """The nodes Kamailio's dispatcher sends calls to now (their probes answered); bench/faults too."""
    out = subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "dispatcher.list"], capture_output=True, text=True).stdout
    active, uri = set(), None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("URI:"):
            uri = line.split()[-1]
        elif line.startswith("FLAGS:") and uri:
            if line.split()[-1].startswith("A"):
                active.add(NODES.get(uri, uri))
            uri = None
    return active


class Cluster:
    """``start`` runs scripts/cluster start for a caller that already holds the test bed lock."""

    def __init__(self, policy: Path):
        self.policy = policy
        self.env: dict[str, str] = {}
        self.settings: dict[str, str] = {}  # what start was given, for a restart of the engines

    def run(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PBX_TESTBED_LOCK_HELD": "1", "PBX_POLICY": str(self.policy), **extra}
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=180)
        if check and done.returncode != 0:
            raise RuntimeError(f"scripts/cluster {' '.join(args)} failed:\n{done.stderr}")
        return done

    def start(self, **extra: str) -> "Cluster":
        # Sweeps every second and a 1 s grace: calls left in progress are ended quickly.
        self.settings = {"PBX_SWEEP_INTERVAL": "1", "PBX_RECONCILE_GRACE": "1", **extra}
        self.run("start", PBX_CLUSTER_FRESH="1", **self.settings)
        for line in self.run("env").stdout.splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value
        return self

    def stop(self) -> None:
        self.run("stop", check=False)

    def kill_engines(self) -> None:
        """SIGKILL to `pbx-app run` and all it started (engines, web page): no engine is left."""
        for pid in reversed(_tree(int((CLUSTER_DIR / "app" / "run.pid").read_text()))):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start_engines(self) -> None:
        """After kill_engines: `start` starts what is missing, the policy publisher with the engines."""
        try:
            os.kill(int((CLUSTER_DIR / "app" / "publish.pid").read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        self.run("start", **self.settings)

    @property
    def database_url(self) -> str:
        return self.env["PBX_DATABASE_URL"]

    def node(self, name: str, action: str) -> None:
        self.run(f"node-{action}", name)

    def cli(self, name: str, command: str) -> str:
        root = subprocess.run([str(REPO / "scripts" / "testbed"), "root"], capture_output=True, text=True).stdout.strip()
        return subprocess.run(["chroot", root, "/usr/sbin/asterisk", "-C", f"/cluster/node-{name}/etc/asterisk.conf",
                               "-rx", command], capture_output=True, text=True).stdout

    def active_nodes(self) -> set[str]:
        return active_nodes()

    async def engines_health(self) -> list[dict]:
        return await engines_health()

    async def all_in_service(self) -> bool:
        """Both nodes in Kamailio's service and every engine connected to both: a node restarted
        answers Kamailio's probes a second or more before the engines are back on it, and a call
        sent there meanwhile is nobody's (the dialplan's own fallback)."""
        return self.active_nodes() == {"a", "b"} and all(
            h and all(h["ari_nodes"].values()) for h in await self.engines_health())


async def engines_health() -> list[dict]:
    """Each engine's /health; {} for one that does not answer (bench/faults too)."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s:
        for url in ENGINE_HEALTH:
            try:
                async with s.get(url) as r:
                    out.append(await r.json())
            except (aiohttp.ClientError, TimeoutError):
                out.append({})
    return out


class WebPage:
    """The cluster's self-service page over HTTP, as the page's own script uses it: sign in with the
    form's CSRF token, then the JSON API with the session's token."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    def add_admin(self, name: str, password: str, workdir: Path) -> None:
        secret = workdir / "password"
        secret.write_text(password + "\n")
        subprocess.run([sys.executable, "-m", "pbx_app", "user", "--database", self.cluster.env["PBX_DATABASE_URL"], "add", name,
                        "--role", "admin", "--password-file", str(secret)], check=True, capture_output=True, cwd=REPO)

    async def login(self, name: str, password: str) -> None:
        async with self.session.get(f"{WEB}/login") as r:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await r.text()).group(1)
        async with self.session.post(f"{WEB}/login", data={"name": name, "password": password, "csrf_token": token}) as r:
            assert r.status == 200, await r.text()
        async with self.session.get(f"{WEB}/api/me") as r:
            self.csrf = (await r.json())["csrf_token"]

    async def save_no_answer(self, ext: str, setting: dict) -> None:
        url = f"{WEB}/api/employees/{ext}/no-answer"
        async with self.session.get(url) as r:
            version = (await r.json())["version"]
        async with self.session.put(url, json={"version": version, "setting": setting},
                                    headers={"X-CSRF-Token": self.csrf}) as r:
            assert r.status == 200, await r.text()

    async def close(self) -> None:
        await self.session.close()


class FrontSipBed(SipBed):
    """The test bed's callers and phones, with callers dialling Kamailio instead of Asterisk.
    Phones register with each node: every node must be able to ring them."""

    registrar = "127.0.0.11:5060"
    more_registrars = ("127.0.0.12:5060",)

    def _spawn(self, name: str, args: list[str]) -> Sipp:
        return super()._spawn(name, [FRONT_SIP if a == ASTERISK_SIP else a for a in args])


@contextmanager
def running_cluster(asterisk, policy: Path, before: Callable[[], object] = lambda: None,
                    after: Callable[[], object] = lambda: None, **settings: str) -> Iterator[Cluster]:
    """A test module's cluster: the session's single-node test bed is stopped for it (its phones'
    ports are the cluster's too) and started again afterwards for the tests that come later.
    ``before``/``after``: the module's own set-up and clean-up around the cluster's life."""
    asterisk("stop", check=False)
    before()
    running = Cluster(policy)
    try:
        running.start(**settings)
    except Exception as exc:
        running.stop()
        after()
        asterisk("start", check=False)
        pytest.fail(f"the cluster did not start: {exc}", pytrace=False)
    try:
        yield running
    finally:
        running.stop()
        after()
        started = asterisk("start", check=False)
        assert started.returncode == 0, f"the single-node test bed did not start again:\n{started.stderr}"


@pytest.fixture
def sip(tmp_path):
    """Callers through Kamailio, the test bed's phones registered with both nodes."""
    bed = FrontSipBed(tmp_path)
    yield bed
    bed.stop()


def node_of(call: CallRecord) -> str:
    """The node that carried a call: Asterisk's systemname prefixes its uniqueid (= our call id)."""
    return call.call_id.split("-", 1)[0]


async def calls_since(url: str, since: datetime) -> list[CallRecord]:
    store = open_store(url)
    try:
        now = datetime.now(timezone.utc)
        return [c for c in await store.calls(since - timedelta(seconds=1), now + timedelta(hours=1)) if c.started_at and c.started_at >= since]
    finally:
        await store.close()


async def ended_since(url: str, since: datetime, count: int, timeout: float = 30.0) -> list[CallRecord]:
    """The calls that started after ``since``, once ``count`` of them have ended in the journal."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        calls = await calls_since(url, since)
        ended = [c for c in calls if c.result is not None]
        if len(ended) >= count:
            return ended
        if loop.time() > deadline:
            raise TimeoutError(f"{len(ended)} of {count} calls ended in the journal: {calls}")
        await asyncio.sleep(0.2)
