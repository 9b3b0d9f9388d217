"""The story of one direct call, told once for both transports (ARI engines and the FastAGI
server): the plan, where the call stands in it, and what the dialplan reports after each step
go in; journal events and the next step for the dialplan come out."""

from .cursor import Cursor
from .story import CallStory, Instruction, Report

__all__ = ["CallStory", "Cursor", "Instruction", "Report"]
