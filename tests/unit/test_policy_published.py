"""Engines on several hosts follow the policy published to PostgreSQL: a published change is in
force within 2 s; a broken file is never published; a store out of reach leaves the last good
policy in force, and /health says so."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from pbx_app import observability
from pbx_app.policy import PolicyError
from pbx_app.policy.published import PublishedPolicy, publish
from pbx_app.agi.service import run_agi
from pbx_app.policy.store import PolicyStore
from pbx_app.settings import Settings
from tests.support.net import free_port
from tests.support.postgres import postgres_server  # noqa: F401  (a fixture)

POLICY = """
employees:
  "101": {name: Ivan Petrov, ring_time: 20}
"""
CHANGED = POLICY.replace("ring_time: 20", "ring_time: 7")


class Engine:
    """Just what /health reads of an engine."""

    def __init__(self):
        self.events = type("Events", (), {"connected": asyncio.Event()})()
        self.events.connected.set()
        self.calls: dict = {}


async def until(predicate, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_published_change_is_in_force_within_two_seconds(postgres_server, tmp_path):
    url = postgres_server.new_database("policy")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    holder = PublishedPolicy(url, PolicyStore(path))
    watcher = asyncio.create_task(holder.watch())
    try:
        assert await until(lambda: holder.reachable, 5)
        path.write_text(CHANGED)
        await asyncio.to_thread(publish, url, path)
        assert await until(lambda: holder().employees["101"].ring_time == 7, 2.0), "not in force within 2 s"
        ok, body = observability.health(Engine(), holder)
        assert ok and body["policy_store"] == "ok"
    finally:
        watcher.cancel()


async def test_a_broken_file_is_never_published(postgres_server, tmp_path):
    url = postgres_server.new_database("policy")
    path = tmp_path / "policy.yaml"
    path.write_text('employees:\n  "101": {name: Ivan, ring_time: -3}\n')
    with pytest.raises(PolicyError):
        publish(url, path)


async def test_an_unreachable_store_keeps_the_last_good_policy_and_health_says_so(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    holder = PublishedPolicy("postgresql://pbx@127.0.0.1:9/none", PolicyStore(path))  # nothing listens on port 9
    watcher = asyncio.create_task(holder.watch())
    try:
        await asyncio.sleep(0.5)
        assert holder().employees["101"].ring_time == 20, "the file's policy is in force"
        ok, body = observability.health(Engine(), holder)
        assert ok, "calls are still served"
        assert body["policy_store"].startswith("unreachable")
    finally:
        watcher.cancel()



async def test_the_fastagi_server_follows_the_published_policy_too(postgres_server, tmp_path):
    """`pbx-app agi` with PBX_POLICY_URL serves what was published, as the engines do: its
    /health names the published version in force, not the host's own file."""
    url = postgres_server.new_database("policy")
    path = tmp_path / "policy.yaml"
    path.write_text(CHANGED)
    version = await asyncio.to_thread(publish, url, path)
    path.write_text(POLICY)  # the host's own file differs
    secret = tmp_path / "agi_secret.conf"
    secret.write_text("PBX_AGI_SECRET=" + "ab" * 32 + "\n")
    secret.chmod(0o600)
    health_port = free_port()
    settings = Settings(policy_path=path, policy_url=url, database_url=f"sqlite:///{tmp_path}/journal.db",
                        spool_dir=tmp_path / "spool", fallback_dir=tmp_path / "fallback",
                        agi_bind=f"127.0.0.1:{free_port()}", engine_bind=f"127.0.0.1:{health_port}", agi_secret_file=secret)
    server = asyncio.create_task(run_agi(settings))
    seen: dict = {}

    async def in_force() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{health_port}/health") as r:
                seen.update(await r.json())
        except aiohttp.ClientError:
            return False
        return seen.get("policy") == f"published policy v{version}"

    try:
        for _ in range(100):
            if await in_force():
                break
            await asyncio.sleep(0.1)
        assert seen.get("policy") == f"published policy v{version}", seen
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
