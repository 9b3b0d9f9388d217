"""Policy actions in words, for Plan.reasons and `pbx-app explain`."""

from __future__ import annotations

from ..policy.model import Action, Policy


def action_words(policy: Policy, action: Action) -> str:
    if action.kind == "callback":
        then = action_words(policy, action.then or Action())
        return f"offer a callback (press 1), else {then}"
    if action.kind == "voicemail":
        return "voicemail"
    if action.kind == "forward":
        if action.target in policy.departments:
            return f"forward to department {action.target}"
        return f"forward to {action.target}"
    return "a message, then hang up" if action.drop == "message" else "busy tone"
