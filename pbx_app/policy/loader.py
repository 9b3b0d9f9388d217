"""YAML → Policy, with every error naming the file, line and column."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


from . import times
from .checks import check_policy
from .collector import collector_paused
from .document import kind, position, read_yaml, source_of, take_apart
from .folder import read_folder
from .model import (
    MAX_RING_TIME,
    MIN_RING_TIME,
    Action,
    Announcement,
    CUSTOM_DIR,
    CallbackSettings,
    CrmRule,
    CrmSettings,
    Department,
    Employee,
    MobileRing,
    Policy,
    SiteDefaults,
    WebhookSettings,
    is_outside,
    normalise_number,
)
from .numbers import NumberOwner, normalise_did
from .outbound import outbound
from .problems import PolicyError, Problem
from .reader import Reader

ACTION_KEYS = {"action", "drop", "to", "announcement", "answer_first", "confirm", "whisper"}
CALLBACK_KEYS = {"then", "route", "attempts", "retry_after", "expires_after", "digit_timeout"}
ACTIONS = ("drop", "forward", "voicemail", "callback")
ACTION_SLOTS = ("on_no_answer", "on_busy", "on_unreachable", "on_absent")
EMPLOYEE_KEYS = {"name", "endpoint", "ring_time", "mailbox", "language", "announcement", "schedule", "absences", "email", "voicemail_to", "numbers", "mobile", "ring_mobile", "external_forwarding", *ACTION_SLOTS}
DEPARTMENT_KEYS = {"name", "members", "strategy", "ring_time", "numbers"}
SITE_KEYS = {"ring_time", "on_no_answer", "language", "max_forwards", "timezone", "announcements_dir", "callback_route", "outbound"}
CRM_KEYS = {"clients", "webhook"}
CRM_RULE_KEYS = {"manager", "on_no_answer", "name"}
WEBHOOK_KEYS = {"url", "timeout_ms", "cache_seconds", "token_file"}
ANNOUNCEMENT_KEYS = {"file", "text"}
TOP_KEYS = {"site", "employees", "departments", "crm"}


def announcement(r: Reader, node: dict, where: str) -> Announcement | None:
    """``announcement: standard | none | {file: NAME} | {file: NAME, text: ...} | {text: ...}``;
    None when not given."""
    value = node.get("announcement")
    w = f"{where}.announcement"
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("standard", "none"):
            return Announcement(kind=value)  # type: ignore[arg-type]
        r.error(node, "announcement", f"{w}: '{value}' is not one of standard, none, {{file: NAME}} or {{text: ...}}")
        return None
    if isinstance(value, dict):
        r.unknown_keys(value, ANNOUNCEMENT_KEYS, w)
        file, text = r.string(value, "file", w), r.string(value, "text", w)
        if file is not None:
            if not file.strip() or ".." in Path(file).parts:
                r.error(value, "file", f"{w}.file: '{file}' is not a file name in the announcements folder")
                return None
            return Announcement(kind="custom", file=file, text=text)
        if text is not None:
            return Announcement(kind="tts", text=text)
        r.error(node, "announcement", f"{w}: expected 'file' (a recorded or rendered announcement) or 'text'")
        return None
    r.error(node, "announcement", f"{w}: expected standard, none, or a mapping {{file: NAME}}, got {kind(value)}")
    return None


def action(r: Reader, parent: dict, key: str, where: str, default_announcement: Announcement | None = None,
           callback_allowed: bool = True) -> Action | None:
    if parent.get(key) is None:  # most of 40,000 slots at 10,000 employees: no text to build
        return None
    node = r.mapping(parent, key, f"{where}.{key}")
    if node is None:
        return None
    w = f"{where}.{key}"
    kind_ = r.choice(node, "action", w, ACTIONS if callback_allowed else ACTIONS[:3], "drop")
    r.unknown_keys(node, ACTION_KEYS | CALLBACK_KEYS if kind_ == "callback" else ACTION_KEYS, w)
    if "action" not in node:
        r.error(node, None, f"{w}: 'action' is required (drop, forward, voicemail or callback)")
    target = r.string(node, "to", w)
    if kind_ == "forward" and target is None:
        r.error(node, None, f"{w}: a forward needs 'to' (an extension or a department)")
    callback, then = None, None
    if kind_ == "callback":
        callback = _callback(r, node, w)
        # What happens when the client does not press 1: a forward, voicemail or drop (not another offer).
        then = action(r, node, "then", w, default_announcement, callback_allowed=False)
    return Action(
        kind=kind_,  # type: ignore[arg-type]
        drop=r.choice(node, "drop", w, ("busy", "message"), "busy"),  # type: ignore[arg-type]
        target=target,
        announcement=announcement(r, node, w) or (default_announcement if kind_ != "callback" else None) or Announcement(),
        answer_first=r.boolean(node, "answer_first", w),
        callback=callback,
        then=then,
        confirm=_flag(r, node, "confirm", w, True),
        whisper=r.boolean(node, "whisper", w),
    )


def _flag(r: Reader, node: dict, key: str, where: str, default: bool) -> bool:
    return r.boolean(node, key, where) if key in node else default


MAX_CALLBACK_ATTEMPTS = 10
MAX_CALLBACK_WAIT = 7 * 86400  # s: a request older than a week is not a callback any more


def _callback(r: Reader, node: dict, w: str) -> CallbackSettings:
    default = CallbackSettings()
    route = r.string(node, "route", w)
    if route is not None and not valid_route(route):
        r.error(node, "route", f"{w}.route: '{route[:80]}' is not a Dial() string with {{number}} for the client's digits "
                               f"(e.g. PJSIP/{{number}}@trunk)")
        route = None
    attempts = r.integer(node, "attempts", w, 1, MAX_CALLBACK_ATTEMPTS, unit="attempts")
    retry_after = r.integer(node, "retry_after", w, 1, 86400)
    expires_after = r.integer(node, "expires_after", w, 1, MAX_CALLBACK_WAIT)
    digit_timeout = r.integer(node, "digit_timeout", w, 1, 30)
    return CallbackSettings(
        route=route,
        attempts=attempts or default.attempts,
        retry_after=retry_after or default.retry_after,
        expires_after=expires_after or default.expires_after,
        digit_timeout=digit_timeout or default.digit_timeout,
    )


def valid_route(route: str) -> bool:
    """A Dial() technology/resource with the client's number in it, and nothing that would end the
    Dial() argument or add a second target (the number itself is digits only)."""
    return ("{number}" in route and "/" in route and len(route) <= 200
            and not any(ch in route for ch in ",&()|$;\"" + "\n") and not any(ch.isspace() for ch in route))


def _site(r: Reader, doc: dict) -> SiteDefaults:
    node = r.mapping(doc, "site", "site")
    default = SiteDefaults()
    if node is None:
        return default
    r.unknown_keys(node, SITE_KEYS, "site")
    max_forwards = r.integer(node, "max_forwards", "site", 0, 10, unit="forwards")
    return SiteDefaults(
        ring_time=r.integer(node, "ring_time", "site", MIN_RING_TIME, MAX_RING_TIME) or default.ring_time,
        on_no_answer=action(r, node, "on_no_answer", "site") or default.on_no_answer,
        language=r.string(node, "language", "site") or default.language,
        max_forwards=default.max_forwards if max_forwards is None else max_forwards,
        timezone=times.timezone(r, node, "site") or default.timezone,
        announcements_dir=r.string(node, "announcements_dir", "site"),
        callback_route=_site_route(r, node),
        outbound=outbound(r, node),
    )


def _site_route(r: Reader, node: dict) -> str | None:
    route = r.string(node, "callback_route", "site")
    if route is not None and not valid_route(route):
        r.error(node, "callback_route", f"site.callback_route: '{route[:80]}' is not a Dial() string with {{number}} "
                                        f"for the client's digits (e.g. PJSIP/{{number}}@trunk)")
        return None
    return route


def _employees(r: Reader, doc: dict) -> dict[str, Employee]:
    node = r.mapping(doc, "employees", "employees")
    result: dict[str, Employee] = {}
    for ext, body in (node or {}).items():
        employee = read_employee(r, node, ext)
        if employee is not None:
            result[employee.extension] = employee
    return result


def read_employee(r: Reader, node: dict, ext: Any) -> Employee | None:
    """``node[ext]``, one entry under ``employees``; None (with the problem noted) if it is not
    a mapping."""
    body = node[ext]
    where = f"employees.{ext}"
    if not isinstance(body, dict):
        r.error(node, ext, f"{where}: expected a mapping, got {kind(body)}")
        return None
    r.unknown_keys(body, EMPLOYEE_KEYS, where)
    extension = str(ext)
    default_announcement = announcement(r, body, where)
    slots = {slot: action(r, body, slot, where, default_announcement) if slot in body else None for slot in ACTION_SLOTS}
    return Employee(
        extension=extension,
        name=r.string(body, "name", where) or extension,
        endpoint=r.string(body, "endpoint", where) or f"PJSIP/{extension}",
        ring_time=r.integer(body, "ring_time", where, MIN_RING_TIME, MAX_RING_TIME),
        mailbox=r.string(body, "mailbox", where),
        language=r.string(body, "language", where),
        announcement=default_announcement,
        schedule=times.schedule(r, body, where),
        absences=times.absences(r, body, where),
        email=_email(r, body, where),
        voicemail_to=_recipients(r, body, where),
        numbers=_numbers(r, body, where),
        mobile=_mobile(r, body, where),
        ring_mobile=_ring_mobile(r, body, where),
        external_forwarding=_flag(r, body, "external_forwarding", where, True),
        **slots,  # type: ignore[arg-type]
    )


RING_MOBILE_KEYS = {"after", "confirm"}


def _mobile(r: Reader, body: dict, where: str) -> str | None:
    """``mobile: "+7 900 123-45-67"``: any usual written form (the allowed patterns are checked
    across the policy, checks.py)."""
    value = r.string(body, "mobile", where)
    if value is not None and not is_outside(value.strip()):
        r.error(body, "mobile", f"{where}.mobile: '{value[:40]}' is not a telephone number "
                                f"(expected e.g. \"+7 900 123-45-67\")")
        return None
    return value.strip() if value is not None else None


def _ring_mobile(r: Reader, body: dict, where: str) -> MobileRing | None:
    """``ring_mobile: true`` (with the desk phone, at once), ``ring_mobile: {after: 10}`` (joining
    10 s into the ring), ``{confirm: false}`` to put the client through without the press of 1."""
    value = body.get("ring_mobile")
    w = f"{where}.ring_mobile"
    if value is None or value is False:
        return None
    if value is True:
        return MobileRing()
    if not isinstance(value, dict):
        r.error(body, "ring_mobile", f"{w}: expected true, false or a mapping {{after: SECONDS}}, got {kind(value)}")
        return None
    r.unknown_keys(value, RING_MOBILE_KEYS, w)
    after = r.integer(value, "after", w, 0, MAX_RING_TIME - 1)
    return MobileRing(after=after or 0, confirm=_flag(r, value, "confirm", w, True))


MAX_ADDRESS = 254  # RFC 5321's limit for a forward path
MAX_RECIPIENTS = 20


def _email(r: Reader, body: dict, where: str) -> str | None:
    value = r.string(body, "email", where)
    if value is not None and not looks_like_address(value):
        r.error(body, "email", f"{where}.email: '{value[:80]}' is not an e-mail address (name@domain)")
        return None
    return value


def _recipients(r: Reader, body: dict, where: str) -> tuple[str, ...]:
    items = r.seq(body, "voicemail_to", where)
    if items is None:
        return ()
    if len(items) > MAX_RECIPIENTS:
        r.error(body, "voicemail_to", f"{where}.voicemail_to: at most {MAX_RECIPIENTS} recipients, got {len(items)}")
        return ()
    result = []
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
            r.error(items, i, f"{where}.voicemail_to[{i}]: expected an extension, a department id or an e-mail address, got {kind(item)}")
            continue
        text = str(item).strip()
        if "@" in text and not looks_like_address(text):
            r.error(items, i, f"{where}.voicemail_to[{i}]: '{text[:80]}' is not an e-mail address (name@domain)")
            continue
        result.append(text)
    return tuple(result)


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")  # \s: what str.isspace() calls a space


def looks_like_address(text: str) -> bool:
    """Enough to catch typos and header injection; the SMTP server has the last word."""
    if len(text) > MAX_ADDRESS or _SPACE_OR_CONTROL.search(text) or text.count("@") != 1:
        return False
    local, domain = text.split("@")
    return bool(local) and "." in domain and not domain.startswith(".") and not domain.endswith(".")


def _departments(r: Reader, doc: dict) -> dict[str, Department]:
    node = r.mapping(doc, "departments", "departments")
    result: dict[str, Department] = {}
    for dep_id, body in (node or {}).items():
        where = f"departments.{dep_id}"
        if not isinstance(body, dict):
            r.error(node, dep_id, f"{where}: expected a mapping, got {kind(body)}")
            continue
        r.unknown_keys(body, DEPARTMENT_KEYS, where)
        members = r.seq(body, "members", f"{where}.members") or []
        result[str(dep_id)] = Department(
            id=str(dep_id),
            name=r.string(body, "name", where) or str(dep_id),
            members=tuple(str(m) for m in members),
            strategy=r.choice(body, "strategy", where, ("ringall", "hunt", "memoryhunt", "random"), "ringall"),  # type: ignore[arg-type]
            ring_time=r.integer(body, "ring_time", where, MIN_RING_TIME, MAX_RING_TIME) or 20,
            numbers=_numbers(r, body, where),
        )
    return result


MIN_DID_DIGITS = 3  # shorter is a typo, not a number a carrier delivers


def _numbers(r: Reader, body: dict, where: str) -> tuple[str, ...]:
    """``numbers: ["+7 495 123-45-67", …]``: the company numbers (DIDs) that reach this owner."""
    items = r.seq(body, "numbers", where)
    result = []
    for i, item in enumerate(items or ()):
        text = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if len(normalise_did(text)) < MIN_DID_DIGITS:
            r.error(items, i, f"{where}.numbers[{i}]: expected a phone number such as \"+7 495 123-45-67\", got {kind(item)}")
            continue
        result.append(text)
    return tuple(result)


def _number_owners(r: Reader, doc: dict, policy: Policy) -> dict[str, NumberOwner]:
    """Every company number → its one owner. A number given twice (in any written form) is an
    error naming both places: which one a call should reach is the policy's to say."""
    owners: dict[str, NumberOwner] = {}
    for section, kind_ in (("employees", "employee"), ("departments", "department")):
        for owner_id, body in (doc.get(section) or {}).items() if isinstance(doc.get(section), dict) else ():
            items = body.get("numbers") if isinstance(body, dict) else None
            if not isinstance(items, list):
                continue
            for i, item in enumerate(items):
                key = normalise_did(str(item))
                if len(key) < MIN_DID_DIGITS or isinstance(item, bool):
                    continue
                line, col = position(items, i)
                source = source_of(items, i) or r.source  # a policy directory: the owner's own file
                owner = NumberOwner(kind_, str(owner_id), str(item).strip(), f"{source}:{line}:{col}")  # type: ignore[arg-type]
                first = owners.get(key)
                if first is None:
                    owners[key] = owner
                else:
                    r.error(items, i, f"{section}.{owner_id}.numbers[{i}]: {owner.written} is already the number of "
                                      f"{first.kind} {first.id} ({first.written}, {first.place}); one number, one owner")
    return owners


def crm_rule(r: Reader, node: dict, where: str, source: str) -> CrmRule | None:
    r.unknown_keys(node, CRM_RULE_KEYS, where)
    manager = r.string(node, "manager", where, required=True)
    on_no_answer = action(r, node, "on_no_answer", where)
    return CrmRule(manager=manager, on_no_answer=on_no_answer, source=source) if manager else None


def _crm(r: Reader, doc: dict) -> CrmSettings:
    node = r.mapping(doc, "crm", "crm")
    if node is None:
        return CrmSettings()
    r.unknown_keys(node, CRM_KEYS, "crm")
    clients: dict[str, CrmRule] = {}
    first_seen: dict[str, Any] = {}
    for number, body in (r.mapping(node, "clients", "crm.clients") or {}).items():
        where = f"crm.clients.{number}"
        digits = normalise_number(number)
        if not digits:
            r.error(node["clients"], number, f"{where}: '{number}' is not a phone number (no digits)", at_key=True)
            continue
        if digits in first_seen:
            r.error(node["clients"], number, f"{where}: the same number as '{first_seen[digits]}' (numbers are compared by their digits)", at_key=True)
            continue
        first_seen[digits] = number
        if not isinstance(body, dict):
            r.error(node["clients"], number, f"{where}: expected a mapping {{manager: EXTENSION, on_no_answer: ...}}, got {kind(body)}")
            continue
        lc = getattr(body, "lc", None)
        line = lc.line + 1 if lc is not None and lc.line is not None else 1
        file = getattr(lc, "source", None) or r.source
        rule = crm_rule(r, body, where, f"static mapping, {file}:{line}")
        if rule is not None:
            clients[digits] = rule
    webhook = None
    hook = r.mapping(node, "webhook", "crm.webhook")
    if hook is not None:
        r.unknown_keys(hook, WEBHOOK_KEYS, "crm.webhook")
        url = r.string(hook, "url", "crm.webhook", required=True)
        if url is not None and not url.startswith(("http://", "https://")):
            r.error(hook, "url", f"crm.webhook.url: '{url}' is not an http:// or https:// address")
            url = None
        timeout = r.integer(hook, "timeout_ms", "crm.webhook", 10, 10000, unit="milliseconds")
        cache = r.integer(hook, "cache_seconds", "crm.webhook", 0, 86400)
        if url is not None:
            webhook = WebhookSettings(
                url=url,
                timeout_ms=500 if timeout is None else timeout,
                cache_seconds=60 if cache is None else cache,
                token_file=r.string(hook, "token_file", "crm.webhook"),
            )
    return CrmSettings(clients=clients, webhook=webhook)


@dataclass
class Analysis:
    """Everything found in one policy text: the policy (None when there are errors), errors
    and warnings, each with its place."""

    policy: Policy | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    document: Any = None  # the tree read, with its marks: only when asked to keep it

    @property
    def ok(self) -> bool:
        return not self.errors


def announcements_folder(policy: Policy, explicit: str | Path | None = None) -> Path:
    """Where custom announcement files are, as this machine sees them: the argument, else
    ``site.announcements_dir`` (relative to the policy file), else $PBX_ANNOUNCEMENTS_DIR, else the
    folder Asterisk plays them from."""
    if explicit is not None:
        return Path(explicit)
    if policy.site.announcements_dir:
        folder = Path(policy.site.announcements_dir)
        if not folder.is_absolute() and not policy.source.startswith("<"):
            base = Path(policy.source)
            folder = (base if base.is_dir() else base.parent) / folder
        return folder
    return Path(os.environ.get("PBX_ANNOUNCEMENTS_DIR") or CUSTOM_DIR)


@collector_paused()
def analyse_policy(
    text: str, source: str = "<policy>", announcements_dir: str | Path | None = None, check_files: bool = False,
    keep_document: bool = False,
) -> Analysis:
    """Reads and checks a policy. Announcement files are looked for when ``check_files`` (or an
    ``announcements_dir``) is given; the tree read is kept in ``document`` if asked."""
    doc, problems = read_yaml(text, source)
    return analyse_document(doc, problems, source, announcements_dir, check_files, keep_document)


@collector_paused()
def analyse_document(doc: Any, problems: list[Problem], source: str, announcements_dir: str | Path | None = None,
                     check_files: bool = False, keep_document: bool = False) -> Analysis:
    """``analyse_policy`` from the tree already read (one file's, or a directory's merged)."""
    if doc is None and problems:
        return Analysis(None, [p for p in problems if p.severity == "error"])
    if doc is None:
        doc = {}
    r = Reader(source)
    r.problems.extend(problems)
    if not isinstance(doc, dict):
        return Analysis(None, [Problem(source, 1, 1, f"expected a mapping at the top (site, employees, …), got {kind(doc)}")])
    r.unknown_keys(doc, TOP_KEYS, "policy")
    policy = Policy(
        site=_site(r, doc), employees=_employees(r, doc), departments=_departments(r, doc), source=source, crm=_crm(r, doc)
    )
    policy = replace(policy, numbers=_number_owners(r, doc, policy))
    folder = announcements_folder(policy, announcements_dir) if (check_files or announcements_dir is not None) else None
    check_policy(r, doc, policy, folder)
    errors = sorted(r.errors, key=lambda p: (p.source, p.line, p.column))
    warnings = sorted(r.warnings, key=lambda p: (p.source, p.line, p.column))
    if not keep_document:
        take_apart(doc)
    return Analysis(None if errors else policy, errors, warnings, doc if keep_document else None)


def parse_policy(text: str, source: str = "<policy>", announcements_dir: str | Path | None = None) -> Policy:
    analysis = analyse_policy(text, source, announcements_dir)
    if analysis.errors:
        raise PolicyError(analysis.errors)
    return analysis.policy  # type: ignore[return-value]


@collector_paused()
def analyse_file(path: str | Path, announcements_dir: str | Path | None = None, keep_document: bool = False) -> Analysis:
    """A policy file, or a policy directory (folder.py)."""
    path = Path(path)
    if path.is_dir():
        doc, problems = read_folder(path)
        return analyse_document(doc, problems, str(path), announcements_dir, True, keep_document)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Analysis(None, [Problem(str(path), 1, 1, f"cannot read the policy: {exc.strerror}")])
    except UnicodeDecodeError as exc:
        return Analysis(None, [Problem(str(path), 1, 1, f"cannot read the policy: not UTF-8 text ({exc.reason} at byte {exc.start})")])
    return analyse_policy(text, str(path), announcements_dir, check_files=True, keep_document=keep_document)


def load_policy(path: str | Path, announcements_dir: str | Path | None = None) -> Policy:
    analysis = analyse_file(path, announcements_dir)
    if analysis.errors:
        raise PolicyError(analysis.errors)
    return analysis.policy  # type: ignore[return-value]


__all__ = ["Analysis", "Problem", "PolicyError", "analyse_file", "analyse_policy", "load_policy", "parse_policy"]
