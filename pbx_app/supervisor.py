"""`pbx-app run`: everything one host needs, as separate processes — PBX_ENGINES call engines
(each its own ARI app, spool and /health port), the self-service page, and the notifier when
PBX_SMTP_HOST or PBX_NOTICE_WEBHOOK_URL is set. A child that dies is
started again with backoff; the others never notice, since each engine serves calls on its own
and the page shares nothing with them but the policy file."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from .notices.settings import notices_enabled
from .settings import Settings
from .waiting import set_within

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Child:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str]


def children(settings: Settings, policy: str | None) -> list[Child]:
    base = [sys.executable, "-m", "pbx_app"]
    extra = ["--policy", policy] if policy else []
    host, _, port = settings.engine_bind.rpartition(":")
    out = []
    for n in range(1, settings.engines + 1):
        env = {"PBX_ENGINE_NAME": f"{settings.engine_prefix}{n}", "PBX_SPOOL_DIR": str(Path(settings.spool_dir) / f"engine-{n}"),
               "PBX_ENGINE_BIND": f"{host or '127.0.0.1'}:{int(port) + n - 1}"}
        out.append(Child(f"engine {n}", (*base, "engine", *extra), env))
    out.append(Child("web", (*base, "web", *extra), {}))
    if notices_enabled(dict(os.environ)):  # e-mail or a webhook is set: someone to tell of missed calls
        out.append(Child("notify", (*base, "notify", *extra), {}))
    return out


async def supervise(settings: Settings, policy: str | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    procs: dict[str, asyncio.subprocess.Process] = {}
    tasks = [asyncio.create_task(_keep(child, procs, stop)) for child in children(settings, policy)]
    await stop.wait()
    for proc in procs.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


async def _keep(child: Child, procs: dict, stop: asyncio.Event) -> None:
    backoff = 1.0
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(*child.argv, env={**os.environ, **child.env},
                                                    preexec_fn=_die_with_parent)
        procs[child.name] = proc
        log.info("%s started (pid %d)", child.name, proc.pid)
        started = loop_time()
        await proc.wait()
        if stop.is_set():
            return
        if proc.returncode == 2:  # a configuration error: restarting will not mend it
            log.error("%s cannot start (exit 2); not restarting it", child.name)
            return
        backoff = 1.0 if loop_time() - started > 60 else min(backoff * 2, 30.0)
        log.error("%s exited with %s; starting it again in %.0f s", child.name, proc.returncode, backoff)
        await set_within(stop, backoff)


def _die_with_parent() -> None:
    """A supervisor killed with SIGKILL must not leave its engines behind: a new one would start
    a second engine of the same name (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def loop_time() -> float:
    return asyncio.get_running_loop().time()
