"""Call engines as separate processes (`python -m pbx_app engine`), as in production: several
of them on the test bed's Asterisk, one journal database, killed with SIGKILL and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from pbx_app.history.records import CallRecord
from pbx_app.history.database import open_store

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineProcess:
    """One engine; ``env`` overrides its settings (PBX_*)."""

    def __init__(self, workdir: Path, name: str, base_env: dict[str, str]):
        self.workdir = workdir
        self.name = name
        self.app = f"pbx_app-{name}"
        self.port = free_port()
        self.env = {**os.environ, **base_env, "PBX_ENGINE_NAME": name, "PBX_ENGINE_BIND": f"127.0.0.1:{self.port}",
                    "PBX_SPOOL_DIR": str(workdir / f"spool-{name}")}
        self.procs: list[subprocess.Popen] = []

    @property
    def proc(self) -> subprocess.Popen:
        return self.procs[-1]

    def log(self) -> str:
        return "".join((self.workdir / f"engine-{self.name}-{i}.log").read_text() for i in range(len(self.procs)))

    def start(self) -> "EngineProcess":
        out = open(self.workdir / f"engine-{self.name}-{len(self.procs)}.log", "w")
        self.procs.append(subprocess.Popen([sys.executable, "-m", "pbx_app", "engine"], cwd=REPO, env=self.env,
                                           stdout=out, stderr=subprocess.STDOUT))
        return self

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.port}{path}") as r:
                return r.status, await r.text()

    async def healthy(self, timeout: float = 15.0) -> dict:
        """Waits until /health says the engine is connected to ARI with its policy loaded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            assert self.proc.poll() is None, f"engine {self.name} exited:\n{self.log()}"
            try:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"http://127.0.0.1:{self.port}/health") as r:
                        if r.status == 200:
                            return await r.json()
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"engine {self.name} did not become healthy:\n{self.log()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


async def until(predicate, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def journal_calls(url: str) -> list[CallRecord]:
    store = open_store(url)
    try:
        now = datetime.now(timezone.utc)
        return await store.calls(now - timedelta(hours=1), now + timedelta(hours=1))
    finally:
        await store.close()


async def all_ended(url: str, count: int, timeout: float = 30.0) -> list[CallRecord]:
    """The journal's calls once ``count`` of them have ended (shipped from every engine's spool)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        calls = await journal_calls(url)
        if len([c for c in calls if c.result is not None]) >= count or loop.time() > deadline:
            return calls
        await asyncio.sleep(0.2)
