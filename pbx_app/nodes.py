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
    any call until it lists again (its calls are then ended from its own listing) — for
    ``lost_after`` seconds at most. Past that the node is taken as lost: its calls cannot be
    asked about and cannot be carried on by anyone, so waiting longer would leave them "in
    progress" for good; the union goes on without it and names it (by the system name its
    channel ids start with) so its calls end as lost with it. One reconcile at a time: the
    nodes' sweeps come in together, and the journal's store has one connection."""

    def __init__(self, nodes: int, reconcile: Callable[..., Awaitable[int]], max_age: float,
                 clock: Callable[[], float] = time.monotonic, lost_after: float | None = None):
        self.reconcile = reconcile
        self.max_age = max_age
        self.lost_after = lost_after
        self.clock = clock
        self._started = clock()
        self._listings: list[tuple[float, frozenset[str]] | None] = [None] * nodes
        self._names: list[str] = [f"node{i + 1}" for i in range(nodes)]  # until a listing names it
        self._running = asyncio.Lock()

    def listener(self, node: int) -> Callable[[set[str]], Awaitable[None]]:
        async def listed(channels: set[str]) -> None:
            self._listings[node] = (self.clock(), frozenset(channels))
            name = next((c.split("-", 1)[0] for c in channels if "-" in c), None)
            if name:
                self._names[node] = name
            seen = self.seen()
            if seen is not None and not self._running.locked():  # a busy one already sees this
                union, lost = seen
                async with self._running:
                    await (self.reconcile(union, lost) if lost else self.reconcile(union))

        return listed

    def union(self) -> set[str] | None:
        """Every node's channels, or None while some node's listing is missing or too old."""
        seen = self.seen()
        return None if seen is None or seen[1] else seen[0]

    def seen(self) -> tuple[set[str], frozenset[str]] | None:
        """The channels of the nodes that answer and the names of the nodes taken as lost; None
        while some node's listing is missing or too old but it is not lost yet."""
        now = self.clock()
        out: set[str] = set()
        lost: set[str] = set()
        for i, listing in enumerate(self._listings):
            if listing is not None and now - listing[0] <= self.max_age:
                out |= listing[1]
                continue
            last = listing[0] if listing is not None else self._started
            if self.lost_after is None or now - last <= self.lost_after:
                return None
            lost.add(self._names[i])
        return out, frozenset(lost)


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
