"""The policy as immutable values. A call keeps the Policy object it started with, so a reload
never changes a call in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ActionKind = Literal["drop", "forward", "voicemail"]
DropKind = Literal["busy", "message"]
AnnouncementKind = Literal["standard", "none", "custom", "tts"]
Strategy = Literal["ringall", "hunt", "memoryhunt", "random"]

DEFAULT_RING_TIME = 120
MIN_RING_TIME = 1
MAX_RING_TIME = 600


@dataclass(frozen=True)
class Announcement:
    """What the caller hears before a forward."""

    kind: AnnouncementKind = "standard"
    file: str | None = None  # custom: a sound name under the announcement library
    text: str | None = None  # tts: the text, rendered to a file when the policy is saved


@dataclass(frozen=True)
class Action:
    """What happens when the employee does not answer (or is busy, or unreachable)."""

    kind: ActionKind = "drop"
    drop: DropKind = "busy"  # for drop, and how the call ends when a forward fails too
    target: str | None = None  # forward: an extension or a department id
    announcement: Announcement = field(default_factory=Announcement)
    # Trunks that drop early media need the caller answered before the announcement.
    answer_first: bool = False


@dataclass(frozen=True)
class Employee:
    extension: str
    name: str
    endpoint: str  # a Dial() string such as PJSIP/101
    ring_time: int | None = None  # None: the site default
    mailbox: str | None = None  # app_voicemail box, "101@default"
    language: str | None = None
    on_no_answer: Action | None = None  # None: the site default
    on_busy: Action | None = None  # None: same as on_no_answer
    on_unreachable: Action | None = None  # None: same as on_no_answer


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    members: tuple[str, ...]
    strategy: Strategy = "ringall"
    ring_time: int = 20


@dataclass(frozen=True)
class SiteDefaults:
    ring_time: int = DEFAULT_RING_TIME
    on_no_answer: Action = field(default_factory=Action)
    language: str = "en"
    # A chain of forwards is bounded: one forward per call unless the site says otherwise.
    max_forwards: int = 1


@dataclass(frozen=True)
class Policy:
    site: SiteDefaults = field(default_factory=SiteDefaults)
    employees: dict[str, Employee] = field(default_factory=dict)
    departments: dict[str, Department] = field(default_factory=dict)
    source: str = "<defaults>"

    def employee(self, extension: str) -> Employee | None:
        return self.employees.get(extension)
