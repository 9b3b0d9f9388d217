"""The self-service web page and its JSON API: every employee sets what happens when they do
not answer; administrators set it for anyone. ``setup(webapp, config, reload)`` adds the routes
to the app's one aiohttp Application (runner.py)."""

from .app import WEB, Web, setup
from .config import WebConfig

__all__ = ["WEB", "Web", "WebConfig", "setup"]
