"""A thin ARI client on aiohttp: REST calls and the events websocket. Nothing here knows
about calls or policies."""

from .client import AriClient, AriError
from .events import EventStream

__all__ = ["AriClient", "AriError", "EventStream"]
