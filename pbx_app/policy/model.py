"""The policy as immutable values. A call keeps the Policy object it started with, so a reload
never changes a call in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal

from .numbers import COUNTRY_CODE, NATIONAL_PREFIX, NumberOwner, normalise_did
from .patterns import Pattern

ActionKind = Literal["drop", "forward", "voicemail", "callback"]
DropKind = Literal["busy", "message"]
AnnouncementKind = Literal["standard", "none", "custom", "tts"]
Strategy = Literal["ringall", "hunt", "memoryhunt", "random"]

DEFAULT_RING_TIME = 120
MIN_RING_TIME = 1
MAX_RING_TIME = 600
DEFAULT_TIMEZONE = "UTC"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# Where custom announcements (uploaded or made from text) live, outside the language folders; the
# policy's site.announcements_dir when it names none. Asterisk plays them from here.
CUSTOM_DIR = "/var/lib/pbx_app/sounds"


@dataclass(frozen=True)
class Announcement:
    """What the caller hears before a forward."""

    kind: AnnouncementKind = "standard"
    file: str | None = None  # custom: a sound name under the announcement library
    # tts: the text; the web UI renders it to ``file``. Text without a file is not rendered yet,
    # and the standard announcement plays until it is.
    text: str | None = None


@dataclass(frozen=True)
class CallbackSettings:
    """How a callback offer is carried out (action ``callback``). The client is dialled through
    ``route``, a Dial() string with ``{number}`` for the client's digits (the site's outgoing
    trunk); None: ``site.callback_route``."""

    route: str | None = None
    attempts: int = 3  # calls to the client before the request ends as client_no_answer
    retry_after: int = 60  # s between calls to a client who did not answer
    expires_after: int = 3600  # s after the request: not served by then, it expires
    digit_timeout: int = 5  # s the client has to press 1 after the offer


@dataclass(frozen=True)
class Action:
    """What happens when the employee does not answer (or is busy, or unreachable)."""

    kind: ActionKind = "drop"
    drop: DropKind = "busy"  # for drop, and how the call ends when a forward fails too
    # forward: an extension, a department id, MOBILE (the owner's own mobile) or an outside
    # number as written (is_outside tells which).
    target: str | None = None
    announcement: Announcement = field(default_factory=Announcement)
    # Trunks that drop early media need the caller answered before the announcement.
    answer_first: bool = False
    # callback: the offer's settings (``announcement`` is the offer the client hears), and what
    # happens when the client does not press 1 (a forward, voicemail or drop; None: busy).
    callback: CallbackSettings | None = None
    then: "Action | None" = None
    # An outside forward: whoever answers presses 1 before the client is put through, so that a
    # mobile's own voicemail does not take the call.
    confirm: bool = True
    # An internal forward: the colleague hears "forwarded call for <owner>" before the client.
    whisper: bool = False


MOBILE = "mobile"  # ``to: mobile``: the owner's own mobile number
MIN_OUTSIDE_DIGITS = 7  # an extension is shorter; a telephone number outside is not


def is_outside(target: str | None) -> bool:
    """A forward target that leaves the PBX: ``mobile`` or a telephone number (7 digits or more,
    written with nothing but digits, spaces, '+', '-', '(' and ')')."""
    if target is None:
        return False
    if target == MOBILE:
        return True
    text = target.strip()
    digits = sum(ch.isdigit() for ch in text)
    return digits >= MIN_OUTSIDE_DIGITS and all(ch.isdigit() or ch in " +-()." for ch in text)


@dataclass(frozen=True)
class MobileRing:
    """"Ring my mobile too": the mobile joins the desk phone's ring ``after`` s (0: at once),
    within the same ring time; the first to answer takes the call."""

    after: int = 0
    confirm: bool = True  # the mobile's answerer presses 1 before the client is put through


@dataclass(frozen=True)
class TimeRange:
    """Working hours within one day. ``end <= start`` means the hours run past midnight into the
    next day (22:00-06:00); ``end`` of None means up to midnight (…-24:00)."""

    start: time
    end: time | None

    @property
    def crosses_midnight(self) -> bool:
        return self.end is not None and self.end <= self.start

    def __str__(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


@dataclass(frozen=True)
class Schedule:
    """Weekly working hours in the employee's time zone; ``days[0]`` is Monday."""

    days: tuple[tuple[TimeRange, ...], ...] = ((),) * 7
    timezone: str | None = None  # None: the site's time zone

    def describe(self) -> str:
        """'mon-fri 09:00-18:00; sat 10:00-14:00' — consecutive days with the same hours joined."""
        parts, i = [], 0
        while i < 7:
            j = i
            while j + 1 < 7 and self.days[j + 1] == self.days[i]:
                j += 1
            if self.days[i]:
                days = WEEKDAYS[i] if i == j else f"{WEEKDAYS[i]}-{WEEKDAYS[j]}"
                parts.append(f"{days} {', '.join(str(r) for r in self.days[i])}")
            i = j + 1
        return "; ".join(parts) or "no working hours"


@dataclass(frozen=True)
class Absence:
    """A vacation, sick leave, trip…: ``start``..``end`` inclusive. Dates are whole days; datetimes
    (naive, in the employee's time zone) are exact."""

    start: date | datetime
    end: date | datetime
    reason: str = "absent"

    def describe(self) -> str:
        fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if isinstance(d, datetime) else d.isoformat()  # noqa: E731
        return f"{self.reason} {fmt(self.start)}..{fmt(self.end)}"


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
    # Off (out of hours or absent): None means the no-answer action, without ringing them.
    on_absent: Action | None = None
    # The default announcement of their forwards (an action's own ``announcement`` wins).
    announcement: Announcement | None = None
    schedule: Schedule | None = None  # None: always at work
    absences: tuple[Absence, ...] = ()
    email: str | None = None  # where their missed-call and voicemail notices go
    numbers: tuple[str, ...] = ()  # the company's numbers (DIDs) that reach them, as written
    # Who else is told of a voicemail message in their mailbox: extensions, department ids or
    # e-mail addresses. The owner always is (when they have an e-mail).
    voicemail_to: tuple[str, ...] = ()
    mobile: str | None = None  # their own mobile number, as written
    ring_mobile: MobileRing | None = None  # None: the desk phone(s) alone
    # The administrator's switch: False forbids their calls leaving the PBX (mobile, outside forwards).
    external_forwarding: bool = True


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    members: tuple[str, ...]
    strategy: Strategy = "ringall"
    ring_time: int = 20
    numbers: tuple[str, ...] = ()  # the company's numbers (DIDs) that ring the group, as written


def normalise_number(number: str) -> str:
    """Digits only: '+7 (900) 123-45-67' and '79001234567' are the same client."""
    return "".join(filter(str.isdigit, str(number)))


@dataclass(frozen=True)
class CrmRule:
    """The CRM's word on one client: who their responsible manager is, and where the call goes
    when that manager does not answer (None: the manager's own setting)."""

    manager: str
    on_no_answer: Action | None = None
    source: str = "CRM"  # where the rule came from, for reasons: "static mapping (file:line)", "webhook"


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout_ms: int = 500  # the call never waits longer than this for the CRM
    cache_seconds: int = 60
    token_file: str | None = None  # sent as "Authorization: Bearer <token>"


@dataclass(frozen=True)
class CrmSettings:
    clients: dict[str, CrmRule] = field(default_factory=dict)  # normalised number → rule
    webhook: WebhookSettings | None = None


Present = Literal["client", "company"]
NumberFormat = Literal["international", "plus", "national"]


@dataclass(frozen=True)
class Trunk:
    """The carrier that outside forwards go through: its PJSIP endpoint, how it wants a number
    written (``format`` of the number's international digits, then ``prefix`` in front), and which
    calling number it is shown: the client's, or ``number`` (the company's) for carriers that
    refuse a calling number that is not the company's own."""

    endpoint: str
    format: NumberFormat = "international"  # 79001234567; plus: +79001234567; national: 89001234567
    prefix: str = ""
    present: Present = "client"
    number: str | None = None  # the company's number, for present: company

    def dialled(self, digits: str) -> str:
        """``digits`` (international, as canonical_number gives them) as this trunk wants them."""
        if self.format == "plus":
            written = "+" + digits
        elif self.format == "national" and digits.startswith(COUNTRY_CODE) and len(digits) == len(COUNTRY_CODE) + 10:
            written = NATIONAL_PREFIX + digits[len(COUNTRY_CODE):]
        else:
            written = digits
        return self.prefix + written


@dataclass(frozen=True)
class OutboundSettings:
    """What the PBX may dial out (callbacks, forwards to outside numbers): numbers matching one of
    ``allow`` and none of ``deny``; no ``allow`` means nothing external is dialled. At most
    ``per_number`` calls to one number, ``per_employee`` made for one employee and ``per_site`` in
    all, in any hour."""

    allow: tuple[Pattern, ...] = ()
    deny: tuple[Pattern, ...] = ()
    per_number: int = 3
    per_employee: int = 30
    per_site: int = 100
    notify: tuple[str, ...] = ()  # administrators' e-mail addresses: told when the site's limit is reached
    trunk: Trunk | None = None  # None: nothing is forwarded outside (callbacks name their own route)


@dataclass(frozen=True)
class SiteDefaults:
    ring_time: int = DEFAULT_RING_TIME
    on_no_answer: Action = field(default_factory=Action)
    language: str = "en"
    # A chain of forwards is bounded: one forward per call unless the site says otherwise.
    max_forwards: int = 1
    timezone: str = DEFAULT_TIMEZONE  # for schedules and absences
    # Where custom announcement files are, as this machine sees them (for `pbx-app check`).
    announcements_dir: str | None = None
    # Callbacks dial the client through this Dial() template ({number}: the client's digits),
    # unless the action names its own route.
    callback_route: str | None = None
    outbound: OutboundSettings = field(default_factory=OutboundSettings)


@dataclass(frozen=True)
class Policy:
    site: SiteDefaults = field(default_factory=SiteDefaults)
    employees: dict[str, Employee] = field(default_factory=dict)
    departments: dict[str, Department] = field(default_factory=dict)
    source: str = "<defaults>"
    crm: CrmSettings = field(default_factory=CrmSettings)
    # normalise_did(number) → who it reaches; built by the loader from employees' and
    # departments' ``numbers``.
    numbers: dict[str, NumberOwner] = field(default_factory=dict)

    def employee(self, extension: str) -> Employee | None:
        return self.employees.get(extension)

    def number_owner(self, dialled: str) -> NumberOwner | None:
        """Who the company number ``dialled`` (any written form) reaches; None: not ours."""
        return self.numbers.get(normalise_did(dialled)) if self.numbers else None
