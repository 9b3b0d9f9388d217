"""Policy actions in words, for Plan.reasons and `pbx-app explain`."""

from __future__ import annotations

from ..policy.model import Action, Announcement, Policy


def announcement_words(a: Announcement) -> str:
    if a.kind == "none":
        return "no announcement"
    if a.kind == "custom":
        return f"announcement file '{a.file}'"
    if a.kind == "tts":
        return "the standard announcement (the text announcement is not rendered yet)"
    return "the standard announcement"


def action_words(policy: Policy, action: Action) -> str:
    if action.kind == "voicemail":
        return "voicemail"
    if action.kind == "forward":
        if action.target in policy.departments:
            return f"forward to department {action.target}"
        return f"forward to {action.target}"
    return "a message, then hang up" if action.drop == "message" else "busy tone"
