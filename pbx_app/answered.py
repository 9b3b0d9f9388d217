"""Who answered a ring, as history keeps it: an extension ("101"), or an extension and where it
was answered when that was not their desk phone ("101 on mobile"). One form for the plan that
writes it (routing/plan.py Ring.answered_by) and the history that reads it (history/rows.py).
A ring's targets are kept in the same form (``rung``), so that a leg that rang only a mobile or
an outside number says so in history even when nobody answered it."""

from __future__ import annotations

_ON = " on "


def answered_on(extension: str, place: str = "") -> str:
    """``place`` "" (the desk phone), "mobile", or an outside number."""
    return f"{extension}{_ON}{place}" if place else extension


def where_answered(text: str) -> tuple[str, str]:
    """``answered_on``'s (extension, place) back; place "" for a desk phone or anything else."""
    extension, on, place = text.partition(_ON)
    return (extension, place) if on and extension and place else (text, "")


def rung(target) -> str:
    """A ring target (routing/plan.py Target or OutsideTarget) as a leg's targets keep it."""
    return answered_on(target.extension, getattr(target, "label", ""))


def extensions(targets) -> tuple[str, ...]:
    """The employees a leg's targets name, each once (a desk phone and a mobile are one person)."""
    return tuple(dict.fromkeys(where_answered(t)[0] for t in targets))
