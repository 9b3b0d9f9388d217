"""The "If the employee does not answer" setting as the page and the API see it: one value that
maps to the employee's ``on_no_answer`` and ``ring_time`` in the policy YAML. Input from the
page is checked here first, so a mistake gets a message naming the field, not a YAML line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ...i18n import N_
from ...policy import Policy
from ...policy.external import outside_number
from ...policy.loader import MAX_CALLBACK_ATTEMPTS, MAX_CALLBACK_WAIT
from ...policy.model import MAX_RING_TIME, MIN_RING_TIME, MOBILE, Action, CallbackSettings, Employee
from ..http.bodies import writable

ACTIONS = ("forward", "voicemail", "drop", "callback")
THEN_ACTIONS = ("forward", "voicemail", "drop")  # what a callback offer falls back to: not another offer
# The page's bounds are the loader's: a value it lets through, the whole-file check accepts too.
CALLBACK_BOUNDS = {"attempts": (1, MAX_CALLBACK_ATTEMPTS), "retry_after": (1, 86400),
                   "expires_after": (1, MAX_CALLBACK_WAIT)}
DROPS = ("busy", "message")
ANNOUNCEMENTS = ("standard", "custom", "tts", "none")
MAX_TEXT = 500


class SettingError(ValueError):
    def __init__(self, problems: dict[str, str]):
        self.problems = problems  # field → message
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


@dataclass(frozen=True)
class AnnouncementChoice:
    kind: str = "standard"  # standard | custom (uploaded) | tts (made from text) | none
    file: str | None = None  # custom and tts: the file in the announcements folder
    text: str | None = None  # tts: what it says


@dataclass(frozen=True)
class ThenChoice:
    """What a callback offer the client did not take turns into."""

    action: str = "drop"  # forward | voicemail | drop
    drop: str = "busy"
    to: str | None = None


@dataclass(frozen=True)
class CallbackChoice:
    then: ThenChoice = field(default_factory=ThenChoice)
    attempts: int = CallbackSettings.attempts
    retry_after: int = CallbackSettings.retry_after
    expires_after: int = CallbackSettings.expires_after
    # The action's own Dial() route as the YAML has it; shown, never set from the page (which
    # trunk a call goes out on is the administrator's file to say).
    route: str | None = None


@dataclass(frozen=True)
class NoAnswerSetting:
    action: str = "drop"
    drop: str = "busy"  # drop: a message then hang up, or the busy tone only
    to: str | None = None  # forward: an extension or a department id
    ring_time: int | None = None  # None: the site's ring time
    announcement: AnnouncementChoice = field(default_factory=AnnouncementChoice)  # forward; callback: the offer
    callback: CallbackChoice | None = None  # callback only

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def setting_from_policy(employee: Employee, raw_announcement: Any = None) -> tuple[NoAnswerSetting, bool]:
    """The employee's setting and whether it is inherited from the site default. The loader
    keeps no TTS text, so the raw YAML value of ``announcement`` supplies it."""
    action = employee.on_no_answer
    inherited = action is None
    return _from_action(action or Action(), employee.ring_time, raw_announcement), inherited


def slot_setting(employee: Employee, slot: str, raw_announcement: Any = None) -> NoAnswerSetting | None:
    """on_busy, on_unreachable or on_absent as the page edits it; None: the no-answer action."""
    action = getattr(employee, slot)
    return None if action is None else _from_action(action, None, raw_announcement)


def site_setting(policy: Policy) -> NoAnswerSetting:
    return _from_action(policy.site.on_no_answer, None, None)


def _from_action(action: Action, ring_time: int | None, raw_announcement: Any) -> NoAnswerSetting:
    a = action.announcement
    if a.kind in ("custom", "tts") and (a.file or a.text):
        text = a.text or (raw_announcement.get("text") if isinstance(raw_announcement, dict) else None)
        choice = AnnouncementChoice("tts" if text else "custom", a.file, str(text) if text else None)
    elif a.kind == "none":
        choice = AnnouncementChoice("none")
    else:
        choice = AnnouncementChoice("standard")
    callback = None
    if action.kind == "callback":
        then, settings = action.then or Action(), action.callback or CallbackSettings()
        callback = CallbackChoice(ThenChoice(then.kind, then.drop, then.target), settings.attempts,
                                  settings.retry_after, settings.expires_after, settings.route)
    return NoAnswerSetting(action.kind, action.drop, action.target, ring_time, choice, callback)


def setting_from_json(data: Any, policy: Policy, extension: str, file_exists: Callable[[str], bool],
                      slot: str = "on_no_answer") -> NoAnswerSetting:
    """Checks what the page sent for ``extension``'s ``slot``; raises SettingError naming each
    bad field."""
    problems: dict[str, str] = {}
    if not isinstance(data, dict):
        raise SettingError({"setting": "expected an object"})
    action = data.get("action")
    if action not in ACTIONS:
        problems["action"] = f"choose one of {', '.join(ACTIONS)}"
    drop = data.get("drop") or "busy"
    if drop not in DROPS:
        problems["drop"] = f"choose one of {', '.join(DROPS)}"
        drop = "busy"
    ring_time = data.get("ring_time")
    if ring_time is not None and (isinstance(ring_time, bool) or not isinstance(ring_time, int)
                                  or not MIN_RING_TIME <= ring_time <= MAX_RING_TIME):
        problems["ring_time"] = f"a whole number of seconds, {MIN_RING_TIME}..{MAX_RING_TIME}, or empty for the site default"
    to = data.get("to")
    announcement, callback = AnnouncementChoice(), None
    if action == "forward":
        _target(to, policy, extension, problems, "to")
        announcement = _announcement(data.get("announcement"), file_exists, problems)
    elif action == "callback":
        to = None
        announcement = _announcement(data.get("announcement"), file_exists, problems)
        if announcement.kind == "none":
            problems["announcement"] = "a callback offer needs a message: standard, a recording or made from text"
        callback = _callback(data.get("callback"), policy, extension, slot, problems)
    else:
        to = None
    if problems:
        raise SettingError(problems)
    return NoAnswerSetting(action, drop, to, ring_time, announcement, callback)


def _target(to: Any, policy: Policy, extension: str, problems: dict[str, str], key: str) -> None:
    if not isinstance(to, str) or not to:
        problems[key] = "choose a colleague or a department"
    elif to == MOBILE:
        reason = outside_target(policy, extension)
        if reason is not None:
            problems[key] = reason
    elif to == extension:
        problems[key] = "an employee cannot forward to themselves"
    elif to not in policy.employees and to not in policy.departments:
        problems[key] = f"'{to[:40]}' is not a colleague or department in the policy"


def outside_target(policy: Policy, extension: str, employee: Employee | None = None, target: str = MOBILE) -> str | None:
    """Why ``target`` (the mobile, or an outside number) cannot be rung for ``extension``
    (``employee``: their entry as it is being saved; None: the policy's); None if it can."""
    employee = employee or policy.employee(extension) or Employee(extension, extension, f"PJSIP/{extension}")
    number = outside_number(policy, employee, target)
    if number.refusal is None:
        return None
    return OUTSIDE_REFUSED.get(number.problem or "", OUTSIDE_REFUSED["pattern"])


# Why the page refuses a mobile or an outside number, in words an employee can act on (the
# details are `pbx-app check`'s, for the administrator). Translated by the page (app.js).
OUTSIDE_REFUSED = {
    "forbidden": N_("an administrator has turned off forwarding your calls outside the office"),
    "no_mobile": N_("enter your mobile number first"),
    "no_trunk": N_("the office has no line for calls outside yet; ask an administrator"),
    "pattern": N_("the office may not call this number; ask an administrator which numbers it may call"),
}


def _callback(data: Any, policy: Policy, extension: str, slot: str, problems: dict[str, str]) -> CallbackChoice | None:
    if not isinstance(data, dict):
        problems["callback"] = "expected an object {then, attempts, retry_after, expires_after}"
        return None
    numbers = {}
    for key, (low, high) in CALLBACK_BOUNDS.items():
        value = data.get(key, getattr(CallbackChoice, key))
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems[f"callback.{key}"] = f"a whole number, {low}..{high}"
            value = getattr(CallbackChoice, key)
        numbers[key] = value
    then = data.get("then") or {}
    if not isinstance(then, dict) or then.get("action") not in THEN_ACTIONS:
        problems["callback.then"] = f"choose one of {', '.join(THEN_ACTIONS)} (not another callback offer)"
        then = {"action": "drop"}
    then_drop = then.get("drop") or "busy"
    if then_drop not in DROPS:
        problems["callback.then.drop"] = f"choose one of {', '.join(DROPS)}"
    then_to = then.get("to") if then["action"] == "forward" else None
    if then["action"] == "forward":
        _target(then_to, policy, extension, problems, "callback.then.to")
    # The route stays what the file says; without one, the site's must be there (the loader's rule).
    employee = policy.employee(extension)
    current = getattr(employee, slot, None) if employee is not None else None
    route = current.callback.route if current is not None and current.callback is not None else None
    if route is None and policy.site.callback_route is None:
        problems["callback.route"] = (f"employees.{extension}.{slot}: a callback needs 'route' (how the client is "
                                      f"dialled, e.g. PJSIP/{{number}}@trunk) or site.callback_route; "
                                      f"an administrator sets it in the policy file")
    return CallbackChoice(ThenChoice(then["action"], then_drop if then_drop in DROPS else "busy",
                                     then_to if isinstance(then_to, str) else None), route=route, **numbers)


def action_from_json(data: Any, policy: Policy, extension: str, file_exists: Callable[[str], bool],
                     slot: str = "on_busy") -> NoAnswerSetting | None:
    """A slot other than no-answer: null means "same as no answer"; no ring time of its own."""
    if data is None:
        return None
    if isinstance(data, dict):
        data = {**data, "ring_time": None}
    return setting_from_json(data, policy, extension, file_exists, slot)


def _announcement(data: Any, file_exists: Callable[[str], bool], problems: dict[str, str]) -> AnnouncementChoice:
    if data is None:
        return AnnouncementChoice()
    if not isinstance(data, dict) or data.get("kind") not in ANNOUNCEMENTS:
        problems["announcement"] = f"choose one of {', '.join(ANNOUNCEMENTS)}"
        return AnnouncementChoice()
    kind = data["kind"]
    if kind in ("standard", "none"):
        return AnnouncementChoice(kind)
    name = data.get("file")
    if not isinstance(name, str) or len(name) > 200 or not file_exists(name):
        what = "upload a recording" if kind == "custom" else "make the message from the text"
        shown = repr(name[:40]) if isinstance(name, str) else repr(None)
        problems["announcement"] = f"{what} first (no such announcement of yours: {shown})"
        return AnnouncementChoice()
    text = None
    if kind == "tts":
        raw = data.get("text")
        text = " ".join(raw.split()) if isinstance(raw, str) and len(raw) <= 4 * MAX_TEXT else ""
        if not text or len(text) > MAX_TEXT or not writable(text):
            problems["announcement"] = f"the text must be 1..{MAX_TEXT} characters of readable text"
    return AnnouncementChoice(kind, name, text)


def describe(setting: NoAnswerSetting, policy: Policy, gettext: Callable[[str], str] = str) -> str:
    """One line for the profile, e.g. "After 20 s: forward to Petr Ivanov (102), standard message",
    in the reader's language (``gettext``; the texts are app.js's, which says the same)."""
    ring = setting.ring_time or policy.site.ring_time
    return gettext("After {0} s: {1}").format(ring, _what(setting, policy, gettext))


def describe_action(setting: NoAnswerSetting | None, policy: Policy, gettext: Callable[[str], str] = str) -> str:
    """The same without the ring time (busy, unreachable, away): "Forward to voicemail"."""
    if setting is None:
        return gettext("Same as no answer")
    what = _what(setting, policy, gettext)
    return what[0].upper() + what[1:]


HEARS = {"standard": N_("standard message"), "custom": N_("custom recording"), "tts": N_("message made from text"),
         "none": N_("no message")}


def _what(setting: NoAnswerSetting | ThenChoice, policy: Policy, gettext: Callable[[str], str]) -> str:
    if setting.action == "forward":
        target = policy.employees.get(setting.to or "")
        department = policy.departments.get(setting.to or "")
        who = (f"{target.name} ({target.extension})" if target
               else gettext("department {0}").format(department.name) if department
               else gettext("my mobile") if setting.to == MOBILE else setting.to)
        if isinstance(setting, ThenChoice):
            return gettext("forward to {0}").format(who)
        return gettext("forward to {0}, {1}").format(who, gettext(HEARS[setting.announcement.kind]))
    if setting.action == "callback":
        then = setting.callback.then if setting.callback else ThenChoice()
        return gettext("offer a callback, else {0}").format(_what(then, policy, gettext))
    if setting.action == "voicemail":
        return gettext("forward to voicemail")
    if setting.drop == "message":
        return gettext("play a message, then hang up")
    return gettext("hang up with a busy tone")
