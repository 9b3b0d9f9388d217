"""Call engines as separate processes (`python -m pbx_app engine`, or `agi` for the FastAGI
server), as in production: several of them on the test bed's Asterisk, one journal database,
killed with SIGKILL and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from pbx_app.history.records import CallRecord
from pbx_app.history.database import open_store
from tests.support.net import free_port
from tests.support.wait import until

REPO = Path(__file__).resolve().parents[2]


class EngineProcess:
    """One engine; ``base_env`` overrides its settings (PBX_*). Started again after a kill it
    has the same name, port and spool, as a restarted service has."""

    def __init__(self, workdir: Path, name: str, base_env: dict[str, str], command: str = "engine"):
        self.workdir = workdir
        self.name = name
        self.command = command
        self.app = f"pbx_app-{name}"
        self.port = free_port()
        # The no-engine plans stay with the test unless it says where Asterisk reads them.
        self.env = {**os.environ, "PBX_FALLBACK_DIR": str(workdir / "fallback"), **base_env, "PBX_ENGINE_NAME": name, "PBX_ENGINE_BIND": f"127.0.0.1:{self.port}",
                    "PBX_SPOOL_DIR": str(workdir / f"spool-{name}")}
        self.procs: list[subprocess.Popen] = []

    @property
    def proc(self) -> subprocess.Popen:
        return self.procs[-1]

    def log(self) -> str:
        return "".join((self.workdir / f"engine-{self.name}-{i}.log").read_text() for i in range(len(self.procs)))

    def start(self) -> "EngineProcess":
        out = open(self.workdir / f"engine-{self.name}-{len(self.procs)}.log", "w")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "pbx_app", self.command], cwd=REPO, env=self.env,
                                           stdout=out, stderr=subprocess.STDOUT))
        return self

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.port}{path}") as r:
                return r.status, await r.text()

    async def healthy(self, timeout: float = 15.0) -> dict:
        """Waits until /health says the engine is ready (connected to ARI, its policy loaded)."""

        async def health() -> dict | None:
            assert self.proc.poll() is None, f"engine {self.name} exited:\n{self.log()}"
            try:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"http://127.0.0.1:{self.port}/health") as r:
                        return await r.json() if r.status == 200 else None
            except aiohttp.ClientError:
                return None

        return await until(health, timeout, lambda: f"engine {self.name} healthy:\n{self.log()}", every=0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_processes(self.procs)


def stop_processes(procs: list[subprocess.Popen | None]) -> None:
    """SIGTERM, as systemd stops a service; SIGKILL for one that does not end within 10 s."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.terminate()
    for p in procs:
        if p is not None:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def journal_calls(url: str) -> list[CallRecord]:
    store = open_store(url)
    try:
        now = datetime.now(timezone.utc)
        return await store.calls(now - timedelta(hours=1), now + timedelta(hours=1))
    finally:
        await store.close()


async def all_ended(url: str, count: int, timeout: float = 30.0) -> list[CallRecord]:
    """The journal's calls once ``count`` of them have ended (shipped from every engine's spool)."""
    calls: list[CallRecord] = []

    async def ended() -> bool:
        calls[:] = await journal_calls(url)
        return len([c for c in calls if c.result is not None]) >= count

    await until(ended, timeout, lambda: f"{count} calls ended in the journal: {calls}", every=0.2)
    return calls
