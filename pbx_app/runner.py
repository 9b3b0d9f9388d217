"""Wires the running app together: settings → policy store, journal, ARI client → Stasis app,
and one web server for the self-service page, /metrics and /health."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from . import observability
from .ari import AriClient
from .calls.app import StasisApp
from .crm import CrmDirectory
from .history.journal import open_journal
from .history.spool import SpoolBusy
from .policy import PolicyError
from .policy.store import PolicyHolder
from .settings import Settings
from .web import WebConfig
from .web import setup as setup_web_ui

log = logging.getLogger(__name__)


async def run_app(settings: Settings) -> int:
    try:
        policy = PolicyHolder(settings.policy_path)
    except PolicyError as exc:
        log.error("cannot start, the policy is not valid:\n%s", exc)
        return 2
    ari = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.app)
    try:
        journal = await open_journal(settings.database_url, settings.spool_dir)
    except (SpoolBusy, OSError) as exc:
        log.error("cannot start, the call journal's spool PBX_SPOOL_DIR=%s is not usable: %s", settings.spool_dir, exc)
        return 2
    metrics = observability.Metrics()
    crm = CrmDirectory()  # the policy's static CRM mapping, then its webhook (with deadline)
    app = StasisApp(ari, policy, journal=metrics.observing(journal), crm=crm)
    app.max_calls = settings.max_calls
    app.events.give_up_after = settings.ari_give_up_after
    # One web server for the app; each feature adds its routes to this application.
    webapp = web.Application()
    observability.setup(webapp, app, policy, metrics)
    setup_web_ui(webapp, WebConfig.from_settings(settings), reload=policy.reload)  # the self-service page
    try:
        web_runner = await serve_web(webapp, settings.web_bind)
    except OSError as exc:
        log.error("cannot serve the web endpoints on PBX_WEB_BIND=%s: %s", settings.web_bind, exc.strerror or exc)
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Checking a large policy takes a moment: off the event loop, so ringing calls never wait on it.
    reloads: set[asyncio.Task] = set()

    def reload_on_sighup() -> None:
        task = asyncio.create_task(policy.reload_in_thread())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_sighup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("pbx_app: ARI %s as %s, app %s, policy %s", settings.ari_url, settings.ari_user, settings.app, settings.policy_path)
    runner = asyncio.create_task(app.run())
    watcher = asyncio.create_task(policy.watch())  # reloads the policy when its file changes
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if runner.done():
        log.error("stopping: %s", runner.exception())  # gave up on ARI (PBX_ARI_GIVE_UP_AFTER)
        code = 3
    runner.cancel()
    watcher.cancel()
    stopping.cancel()
    await app.drain()
    await crm.close()
    await journal.close()
    await web_runner.cleanup()
    await ari.close()
    return code


async def serve_web(webapp: web.Application, bind: str) -> web.AppRunner:
    host, _, port = bind.rpartition(":")
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    log.info("web endpoints on http://%s/ (/health, /metrics)", bind)
    return runner
