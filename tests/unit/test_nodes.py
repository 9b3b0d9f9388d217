"""An engine serving several Asterisk nodes ends a journal call only when no node has its channel."""

from __future__ import annotations

import asyncio

from pbx_app import observability
from pbx_app.nodes import EngineGroup, NodeListings
from pbx_app.settings import Settings
from pbx_app.supervisor import children


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_calls_are_reconciled_against_every_nodes_channels():
    seen: list[set[str]] = []

    async def reconcile(channels: set[str]) -> int:
        seen.append(channels)
        return 0

    clock = Clock()
    listings = NodeListings(2, reconcile, max_age=30, clock=clock)
    await listings.listener(0)({"a-1.0"})
    assert seen == [], "node b has not listed yet: its calls could still be up"
    await listings.listener(1)({"b-1.0", "b-1.1"})
    assert seen == [{"a-1.0", "b-1.0", "b-1.1"}]


async def test_a_node_that_stopped_listing_blocks_reconciling():
    seen: list[set[str]] = []

    async def reconcile(channels: set[str]) -> int:
        seen.append(channels)
        return 0

    clock = Clock()
    listings = NodeListings(2, reconcile, max_age=30, clock=clock)
    await listings.listener(0)({"a-1.0"})
    await listings.listener(1)({"b-1.0"})
    clock.now += 31  # node b is down: its sweeps stopped
    await listings.listener(0)(set())
    assert seen == [{"a-1.0", "b-1.0"}], "a call of node b's must not be ended while b cannot be asked"
    await listings.listener(1)(set())  # b is back, without the call
    assert seen[-1] == set()


async def test_one_reconcile_at_a_time():
    started = asyncio.Event()
    release = asyncio.Event()
    count = 0

    async def reconcile(channels: set[str]) -> int:
        nonlocal count
        count += 1
        started.set()
        await release.wait()
        return 0

    listings = NodeListings(2, reconcile, max_age=30)
    await listings.listener(0)(set())
    first = asyncio.create_task(listings.listener(1)(set()))
    await started.wait()
    await listings.listener(0)(set())  # comes in while the first still runs: skipped
    release.set()
    await first
    assert count == 1


class FakeEvents:
    def __init__(self, connected: bool):
        self.connected = asyncio.Event()
        if connected:
            self.connected.set()
        self.reconnects = 1
        self.skipped = 0


class FakeEngine:
    def __init__(self, connected: bool, calls: dict):
        self.events = FakeEvents(connected)
        self.calls = calls
        self.max_calls = 500
        self.refused = self.taken_over = 0
        self.event_counts = {"StasisStart": 2}
        self.ari = type("Ari", (), {"request_counts": {"POST /channels/{id}/continue": 3}})()


def test_health_of_an_engine_serving_two_nodes_one_down():
    group = EngineGroup([FakeEngine(False, {}), FakeEngine(True, {"b-1.0": object()})])
    ok, body = observability.health(group, lambda: object())
    assert ok, "the engine still serves node 2: healthy"
    assert body["ari_nodes"] == {"node1": False, "node2": True}
    assert body["calls_in_progress"] == 1
    assert group.busy("b-1.0") and not group.busy("a-1.0")
    assert group.event_counts == {"StasisStart": 4}


def test_several_ari_urls_and_engine_names_per_host():
    settings = Settings.from_env({"PBX_ARI_URL": "http://127.0.0.11:8088, http://127.0.0.12:8088",
                                  "PBX_ARI_PASSWORD": "x", "PBX_ENGINE_PREFIX": "hostA-"})
    assert settings.ari_urls == ("http://127.0.0.11:8088", "http://127.0.0.12:8088")
    names = [c.env["PBX_ENGINE_NAME"] for c in children(settings, None) if "PBX_ENGINE_NAME" in c.env]
    assert names == ["hostA-1", "hostA-2"]
    assert Settings.from_env({"PBX_ARI_PASSWORD": "x"}).ari_urls == ("http://127.0.0.1:8088",)


async def test_a_node_silent_past_lost_after_is_named_lost_and_stops_blocking():
    seen: list[tuple] = []

    async def reconcile(channels: set[str], lost: frozenset[str] = frozenset()) -> int:
        seen.append((channels, lost))
        return 0

    clock = Clock()
    listings = NodeListings(2, reconcile, max_age=30, clock=clock, lost_after=120)
    await listings.listener(0)({"a-1.0"})
    await listings.listener(1)({"b-7.0"})
    clock.now += 100  # node b was SIGKILLed: no listing since
    await listings.listener(0)({"a-1.0"})
    assert seen == [({"a-1.0", "b-7.0"}, frozenset())], "still within lost_after: b's calls may be up"
    clock.now += 21
    await listings.listener(0)({"a-1.0"})
    assert seen[-1] == ({"a-1.0"}, frozenset({"b"})), "b is lost, named by its channels' system name"
    await listings.listener(1)(set())  # b comes back (restarted: its old channels are gone)
    assert seen[-1] == ({"a-1.0"}, frozenset())


async def test_a_node_that_never_listed_is_lost_after_lost_after_from_the_start():
    seen: list[tuple] = []

    async def reconcile(channels: set[str], lost: frozenset[str] = frozenset()) -> int:
        seen.append((channels, lost))
        return 0

    clock = Clock()
    listings = NodeListings(2, reconcile, max_age=30, clock=clock, lost_after=60)
    await listings.listener(0)(set())
    assert seen == []
    clock.now += 61
    await listings.listener(0)(set())
    assert seen == [(set(), frozenset({"node2"}))]
