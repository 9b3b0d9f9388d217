"""Who may connect to the FastAGI port, and how refusals are logged.

Only Asterisk talks FastAGI to us: peers not on PBX_AGI_ALLOWED_PEERS (default: loopback) are
closed before a byte is read. Refusals are logged once a minute per peer with a count, so a
flood costs a few log lines instead of one per connection."""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Callable, Iterable

log = logging.getLogger("pbx_app.agi")

LOOPBACK = ("127.0.0.1/32", "::1/128")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str], setting: str = "PBX_AGI_ALLOWED_PEERS") -> tuple[Network, ...]:
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {item.strip()[:60]!r} is not an address or network") from None
    return tuple(networks)


class AllowList:
    def __init__(self, networks: Iterable[str] = LOOPBACK):
        self.networks = parse_networks(networks)

    def allows(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address((host or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
        return any(address in network for network in self.networks)

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.networks)


class RefusalLog:
    """At most one WARNING line per peer per ``every`` seconds; the rest are counted into it."""

    MAX_PEERS = 4096  # beyond this many peers in one period, they share one line

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self.peers: dict[str, list] = {}  # peer → [last logged at, refused since then]
        self.refused = 0  # all refusals, for /metrics

    def note(self, peer: str, why: str) -> None:
        self.refused += 1
        now = self.clock()
        if peer not in self.peers and len(self.peers) >= self.MAX_PEERS:
            self._forget(now)
            if len(self.peers) >= self.MAX_PEERS:
                peer = "(other peers)"
        entry = self.peers.get(peer)
        if entry is None:
            self.peers[peer] = [now, 0]
            log.warning("FastAGI: refused %s: %s (more refusals of it: one line a minute)", peer, why)
        elif now - entry[0] >= self.every:
            log.warning("FastAGI: refused %s %d times in %.0f s, last: %s", peer, entry[1] + 1, now - entry[0], why)
            entry[:] = [now, 0]
        else:
            entry[1] += 1

    def _forget(self, now: float) -> None:
        for peer in [p for p, (at, _) in self.peers.items() if now - at >= self.every]:
            del self.peers[peer]
