"""Wires the running app together: settings → ARI client → Stasis app, with the policy loaded
once at start (the last good policy stays in force if a later load fails)."""

from __future__ import annotations

import asyncio
import logging
import signal

from .ari import AriClient
from .calls.app import StasisApp
from .crm import CrmDirectory
from .policy import PolicyError
from .policy.store import PolicyHolder
from .settings import Settings

log = logging.getLogger(__name__)


async def run_app(settings: Settings) -> int:
    try:
        policy = PolicyHolder(settings.policy_path)
    except PolicyError as exc:
        log.error("cannot start, the policy is not valid:\n%s", exc)
        return 2
    ari = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.app)
    crm = CrmDirectory()  # the policy's static CRM mapping, then its webhook (with deadline)
    app = StasisApp(ari, policy, crm=crm)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, policy.reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("pbx_app: ARI %s as %s, app %s, policy %s", settings.ari_url, settings.ari_user, settings.app, settings.policy_path)
    runner = asyncio.create_task(app.run())
    watcher = asyncio.create_task(policy.watch())  # reloads the policy when its file changes
    await stop.wait()
    runner.cancel()
    watcher.cancel()
    await app.drain()
    await crm.close()
    await ari.close()
    return 0
