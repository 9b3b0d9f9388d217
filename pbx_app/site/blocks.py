"""Our additions to a site's file: one marked block at its end. Re-running replaces the block,
--undo removes it, and the site's own lines are never rewritten."""

from __future__ import annotations

BEGIN = "; >>> pbx_app: added by `pbx-app asterisk install`; `pbx-app asterisk install --undo` takes it out"
END = "; <<< pbx_app"


def strip_block(text: str) -> str:
    """The text without our block (and the blank line we put before it)."""
    start = text.find(BEGIN)
    if start < 0:
        return text
    end = text.find(END, start)
    end = len(text) if end < 0 else text.find("\n", end) + 1 or len(text)
    head = text[:start]
    if head.endswith("\n\n"):
        head = head[:-1]
    return head + text[end:]


def with_block(text: str, lines: list[str]) -> str:
    base = strip_block(text)
    if not lines:
        return base
    if base and not base.endswith("\n"):
        base += "\n"
    return base + ("\n" if base else "") + "\n".join([BEGIN, *lines, END]) + "\n"
