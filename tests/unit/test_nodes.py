"""An engine serving several Asterisk nodes ends a journal call only when no node has its channel."""

from __future__ import annotations

import asyncio

from pbx_app.nodes import NodeListings


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
