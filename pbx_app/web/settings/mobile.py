"""The employee's mobile as the page edits it, and as it is written into their entry:

    mobile: "+7 900 123-45-67"
    ring_mobile: {after: 10}        # or true (with the desk phone at once); absent: desk only
    external_forwarding: false      # an administrator's switch: nothing leaves the PBX for them

"Forward to my mobile" is the no-answer setting's forward with ``to: mobile`` (no_answer.py). A number the site's patterns or trunk do not let the PBX dial, or an
employee an administrator has barred, gets a message saying so before anything is written; the
loader then checks the whole file again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ...i18n import N_
from ...policy import Policy
from ...policy.model import MOBILE, Employee, MobileRing, is_outside
from .no_answer import SettingError, outside_target
from .policy_file import add_key

RINGS = ("off", "together", "after")  # desk only; mobile with it at once; mobile joining after N s
MAX_NUMBER = 40


@dataclass(frozen=True)
class MobileSetting:
    mobile: str | None = None
    ring: str = "off"
    after: int = 0  # ring "after": seconds into the ring
    confirm: bool = True  # kept as the file has it; the page does not offer turning it off
    external_forwarding: bool = True  # only an administrator changes it

    def to_json(self) -> dict[str, Any]:
        return {"mobile": self.mobile, "ring": self.ring, "after": self.after,
                "external_forwarding": self.external_forwarding}


def mobile_from_policy(employee: Employee) -> MobileSetting:
    together = employee.ring_mobile
    ring = "off" if together is None else ("after" if together.after else "together")
    return MobileSetting(employee.mobile, ring, together.after if together else 0,
                         together.confirm if together else True, employee.external_forwarding)


def mobile_from_json(data: Any, policy: Policy, extension: str, admin: bool) -> MobileSetting:
    """Checks what the page sent; raises SettingError naming each bad field. Only an
    administrator's ``external_forwarding`` counts; an employee's keeps the file's value."""
    if not isinstance(data, dict):
        raise SettingError({"mobile": "expected an object {mobile, ring, after}"})
    employee = policy.employee(extension) or Employee(extension, extension, f"PJSIP/{extension}")
    problems: dict[str, str] = {}
    mobile = data.get("mobile")
    if mobile is None or (isinstance(mobile, str) and not mobile.strip()):
        mobile = None
    elif not isinstance(mobile, str) or len(mobile) > MAX_NUMBER or not is_outside(mobile.strip()) or mobile.strip() == MOBILE:
        problems["mobile"] = N_("a telephone number such as +7 900 123-45-67, or empty")
        mobile = None
    else:
        mobile = mobile.strip()
    allowed = employee.external_forwarding
    if admin and "external_forwarding" in data:
        if not isinstance(data["external_forwarding"], bool):
            problems["external_forwarding"] = "true or false"
        else:
            allowed = data["external_forwarding"]
    ring = data.get("ring", "off")
    if ring not in RINGS:
        problems["ring"] = f"choose one of {', '.join(RINGS)}"
        ring = "off"
    after = data.get("after", 0) if ring == "after" else 0
    ring_time = employee.ring_time or policy.site.ring_time
    if ring == "after" and (isinstance(after, bool) or not isinstance(after, int) or not 1 <= after < ring_time):
        problems["after"] = f"a whole number of seconds, 1..{ring_time - 1} (within the ring time of {ring_time} s)"
        after = 0
    current = employee.ring_mobile
    setting = MobileSetting(mobile, ring, after, current.confirm if current else True, allowed)
    if ring != "off":
        reason = outside_target(policy, extension, Employee(employee.extension, employee.name, employee.endpoint,
                                                             mobile=mobile, external_forwarding=allowed))
        if reason is not None:
            problems["mobile" if mobile else "ring"] = reason
    if problems:
        raise SettingError(problems)
    return setting


def apply_mobile(body: CommentedMap, setting: MobileSetting) -> None:
    """Writes ``mobile``, ``ring_mobile`` and ``external_forwarding``; unchanged values keep their bytes."""
    if setting.mobile is None:
        body.pop("mobile", None)
    elif str(body.get("mobile", "")).strip() != setting.mobile:
        if "mobile" in body:
            body["mobile"] = DoubleQuotedScalarString(setting.mobile)
        else:
            add_key(body, "mobile", DoubleQuotedScalarString(setting.mobile))
    wanted: Any = None
    if setting.ring == "together":
        wanted = True if setting.confirm else _mapping(0, False)
    elif setting.ring == "after":
        wanted = _mapping(setting.after, setting.confirm)
    old = body.get("ring_mobile")
    if wanted is None:
        body.pop("ring_mobile", None)
    elif _same_ring(old, wanted):
        pass
    elif "ring_mobile" in body:
        body["ring_mobile"] = wanted
    else:
        add_key(body, "ring_mobile", wanted)
    if setting.external_forwarding:
        body.pop("external_forwarding", None)
    elif body.get("external_forwarding") is not False:
        add_key(body, "external_forwarding", False)


def _mapping(after: int, confirm: bool) -> CommentedMap:
    node = CommentedMap([("after", after)] + ([] if confirm else [("confirm", False)]))
    node.fa.set_flow_style()
    return node


def _same_ring(old: Any, wanted: Any) -> bool:
    def value(v: Any) -> MobileRing | None:
        if v is True:
            return MobileRing()
        if isinstance(v, dict):
            return MobileRing(v.get("after", 0) or 0, v.get("confirm", True))
        return None
    return value(old) == value(wanted)

