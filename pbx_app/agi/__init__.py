"""FastAGI mode: the same product for PBXs whose dialplan stays in charge (docs/fastagi.md)."""

from .server import AgiServer
from .service import run_agi

__all__ = ["AgiServer", "run_agi"]
