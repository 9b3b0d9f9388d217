"""What the network edge of a request says, and how far it is believed: the Host header must be
one of ours (PBX_WEB_ALLOWED_HOSTS, so a DNS-rebinding page cannot reach us through a name it
controls), and X-Forwarded-For counts only when it comes from one of our own reverse proxies
(PBX_WEB_TRUSTED_PROXIES), so each client behind the proxy is limited on its own address."""

from __future__ import annotations

import ipaddress
from typing import Awaitable, Callable

from aiohttp import web

from ..config import Network

MAX_HOPS = 16  # a longer X-Forwarded-For is cut to its last hops: the ones our proxies added


def host_name(header: str) -> str:
    """The name in a Host header, without the port; IPv6 without brackets; lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def allowed_hosts_middleware(allowed: tuple[str, ...]) -> Callable:
    names = frozenset(h.lower() for h in allowed)

    @web.middleware
    async def check_host(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if "*" not in names and host_name(request.headers.get("Host", "")) not in names:
            return web.json_response(
                {"error": "this server does not answer for that host name (PBX_WEB_ALLOWED_HOSTS)", "code": "bad_host"},
                status=421)
        return await handler(request)

    return check_host


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in proxies)


def client_address(request: web.Request, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the last address in
    X-Forwarded-For that is not one of our proxies (walking back from the one nearest to us)."""
    peer = request.remote or "?"
    if not proxies or not _trusted(_parse(peer), proxies):
        return peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")[-MAX_HOPS:]
    for hop in reversed(hops):
        hop = hop.strip()
        if not hop:
            continue
        address = _parse(hop)
        if address is None:
            return hop[:64]  # what our proxy saw was not an address: still keep it apart from others
        if not _trusted(address, proxies):
            return str(address)
    return peer
