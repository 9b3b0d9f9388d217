"""Engines on several hosts follow the policy published to PostgreSQL: a published change is in
force within 2 s; a broken file is never published; a store out of reach leaves the last good
policy in force, and /health says so."""

from __future__ import annotations

import asyncio

import pytest

from pbx_app import observability
from pbx_app.policy import PolicyError
from pbx_app.policy.published import PublishedPolicy, publish
from pbx_app.policy.store import PolicyStore
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
