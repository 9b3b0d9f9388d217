"""One engine process serving several Asterisk nodes (PBX_ARI_URL=url,url,...): one AriClient,
CallEngine and Sweeper per node, all under the same ARI app name, sharing the policy and the
journal. A node's calls never leave it (the caller's channel lives there), so the per-node
engines share nothing else; a node that is down costs only its own calls, and its EventStream
keeps reconnecting by itself.

Two things need every node at once: the reconciler, which may end a journal call only when no
node has its channel any more, and /health and /metrics, which describe the whole process."""

from __future__ import annotations

import asyncio
import time
from collections import ChainMap
from typing import Awaitable, Callable, Sequence


class NodeListings:
    """The channels each node had at its last listing. ``reconcile`` gets their union, and only
    while every node's listing is recent: a node that is down, unreachable or whose listing
    failed could still have the channel of a call the journal has open, so it blocks ending
    any call until it lists again (its calls are then ended from its own listing). One reconcile
    at a time: the nodes' sweeps come in together, and the journal's store has one connection."""

    def __init__(self, nodes: int, reconcile: Callable[[set[str]], Awaitable[int]], max_age: float,
                 clock: Callable[[], float] = time.monotonic):
        self.reconcile = reconcile
        self.max_age = max_age
        self.clock = clock
        self._listings: list[tuple[float, frozenset[str]] | None] = [None] * nodes
        self._running = asyncio.Lock()

    def listener(self, node: int) -> Callable[[set[str]], Awaitable[None]]:
        async def listed(channels: set[str]) -> None:
            self._listings[node] = (self.clock(), frozenset(channels))
            union = self.union()
            if union is not None and not self._running.locked():  # a busy one already sees this
                async with self._running:
                    await self.reconcile(union)

        return listed

    def union(self) -> set[str] | None:
        """Every node's channels, or None while some node's listing is missing or too old."""
        now = self.clock()
        out: set[str] = set()
        for listing in self._listings:
            if listing is None or now - listing[0] > self.max_age:
                return None
            out |= listing[1]
        return out


class _AnySet:
    """An asyncio.Event look-alike for /health: set while any node's websocket is connected."""

    def __init__(self, events: Sequence):
        self._events = events

    def is_set(self) -> bool:
        return any(e.connected.is_set() for e in self._events)


class _Events:
    def __init__(self, engines: Sequence):
        self._streams = [e.events for e in engines]
        self.connected = _AnySet(self._streams)

    @property
    def reconnects(self) -> int:
        return sum(s.reconnects for s in self._streams)

    @property
    def skipped(self) -> int:
        return sum(getattr(s, "skipped", 0) for s in self._streams)


class _Ari:
    def __init__(self, engines: Sequence):
        self._clients = [e.ari for e in engines]

    @property
    def request_counts(self) -> dict[str, int]:
        return _summed(getattr(c, "request_counts", None) or {} for c in self._clients)


class EngineGroup:
    """The per-node engines of one process, seen by /health and /metrics as one engine; ``nodes``
    says which node's ARI is connected (by position in PBX_ARI_URL, never by address)."""

    def __init__(self, engines: Sequence):
        self.engines = list(engines)
        self.events = _Events(self.engines)
        self.ari = _Ari(self.engines)
        self.max_calls = self.engines[0].max_calls

    @property
    def calls(self) -> ChainMap:
        return ChainMap(*(e.calls for e in self.engines))

    @property
    def nodes(self) -> dict[str, bool]:
        return {f"node{i + 1}": e.events.connected.is_set() for i, e in enumerate(self.engines)}

    @property
    def refused(self) -> int:
        return sum(e.refused for e in self.engines)

    @property
    def taken_over(self) -> int:
        return sum(e.taken_over for e in self.engines)

    @property
    def event_counts(self) -> dict[str, int]:
        return _summed(e.event_counts for e in self.engines)

    def busy(self, call_id: str) -> bool:
        return any(call_id in e.calls for e in self.engines)


def _summed(counts) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for key, value in c.items():
            out[key] = out.get(key, 0) + value
    return out
