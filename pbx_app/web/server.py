"""`pbx-app web`: the self-service page and its API in a process of their own, so nothing a
visitor does (a big policy to parse, argon2, uploads) ever waits a call engine's event loop.
It needs no ARI: a save writes the policy file, and every engine sees the new file within a
second (it polls the file's mtime)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from .app import setup
from .config import WebConfig

log = logging.getLogger(__name__)
# The largest body the page accepts is an upload; everything else is read with its own bound.
MAX_REQUEST = 11 * 1024 * 1024


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(settings) -> web.Application:
    webapp = web.Application(client_max_size=MAX_REQUEST)
    setup(webapp, WebConfig.from_settings(settings))
    webapp.router.add_get("/health", health)
    return webapp


async def serve(settings) -> int:
    """Serves the page on PBX_WEB_BIND until SIGTERM/SIGINT; 2 when it cannot listen."""
    # On a machine the page shares with Asterisk and the engines, a flood of page requests must
    # take only the CPU that calls leave over (bench/README.md: the page hammered during calls).
    try:
        os.nice(settings.web_nice)
    except (OSError, AttributeError):
        log.warning("cannot lower the page's CPU priority (PBX_WEB_NICE=%s)", settings.web_nice)
    webapp = make_app(settings)
    host, _, port = settings.web_bind.rpartition(":")
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port)).start()
    except (OSError, ValueError) as exc:
        log.error("cannot serve the web page on PBX_WEB_BIND=%s: %s", settings.web_bind, getattr(exc, "strerror", None) or exc)
        await runner.cleanup()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("the self-service page on http://%s/ (policy %s)", settings.web_bind, settings.policy_path)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
