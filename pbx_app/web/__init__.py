"""The self-service web page and its JSON API: every employee sets what happens when they do
not answer; administrators set it for anyone. ``setup(webapp, config, reload)`` adds the routes
to an aiohttp Application; ``pbx-app web`` (server.py) serves them in their own process."""

from .app import setup
from .config import WebConfig
from .state import WEB, Web

__all__ = ["WEB", "Web", "WebConfig", "setup"]
