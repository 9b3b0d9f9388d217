"""Where a call stands in its plan: the one cursor both transports leave on the channel."""

from __future__ import annotations

from dataclasses import dataclass

BRANCHES = ("first", "no_answer", "busy", "unreachable")


@dataclass
class Cursor:
    """Which branch of the plan, which step in it, the last leg number, and whether a Dial()
    has run (after one, the rest of the call must not leave a CDR row of its own)."""

    branch: str  # one of BRANCHES
    index: int
    leg: int
    dialled: bool = False

    def encode(self) -> str:
        return f"{self.branch}:{self.index}:{self.leg}:{int(self.dialled)}"

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        """Also reads the three-field form (branch:index:leg) engines wrote before the dialled flag."""
        parts = text.split(":")
        if len(parts) == 3:
            parts.append("0")
        branch, index, leg, dialled = parts
        if branch not in BRANCHES:
            raise ValueError(f"unknown branch {branch!r}")
        return cls(branch, int(index), int(leg), dialled == "1")
