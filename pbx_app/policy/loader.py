"""YAML → Policy, with every error naming the file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from .model import (
    MAX_RING_TIME,
    MIN_RING_TIME,
    Action,
    Announcement,
    Department,
    Employee,
    Policy,
    SiteDefaults,
)


@dataclass(frozen=True)
class Problem:
    source: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    """The policy is not valid; ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class _Reader:
    """Walks the YAML tree, remembering where each value stood so errors can point at it."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def error(self, node: Any, key: Any, message: str) -> None:
        line, col = _position(node, key)
        self.problems.append(Problem(self.source, line, col, message))

    def mapping(self, parent: Any, key: Any, where: str) -> CommentedMap | None:
        value = parent.get(key) if isinstance(parent, dict) else None
        if value is None:
            return None
        if not isinstance(value, CommentedMap):
            self.error(parent, key, f"{where}: expected a mapping, got {_kind(value)}")
            return None
        return value

    def string(self, node: CommentedMap, key: str, where: str, required: bool = False) -> str | None:
        if key not in node or node[key] is None:
            if required:
                self.error(node, None, f"{where}: '{key}' is required")
            return None
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.error(node, key, f"{where}.{key}: expected a string, got {_kind(value)}")
            return None
        return str(value)

    def integer(self, node: CommentedMap, key: str, where: str, lo: int, hi: int) -> int | None:
        if key not in node or node[key] is None:
            return None
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, key, f"{where}.{key}: expected a whole number of seconds, got {_kind(value)}")
            return None
        if not lo <= value <= hi:
            self.error(node, key, f"{where}.{key}: {value} is out of range, expected {lo}..{hi}")
            return None
        return value

    def choice(self, node: CommentedMap, key: str, where: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.string(node, key, where)
        if value is None:
            return default
        if value not in allowed:
            self.error(node, key, f"{where}.{key}: '{value}' is not one of {', '.join(allowed)}")
            return default
        return value

    def unknown_keys(self, node: CommentedMap, allowed: set[str], where: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(node, key, f"{where}: unknown key '{key}' (expected one of {', '.join(sorted(allowed))})")


def _position(node: Any, key: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None:
        return 1, 1
    try:
        if key is not None and isinstance(node, CommentedMap) and key in node:
            if isinstance(node[key], (CommentedMap, CommentedSeq)) or node[key] is None:
                line, col = lc.key(key)
            else:
                line, col = lc.value(key)
        elif key is not None and isinstance(node, CommentedSeq):
            line, col = lc.item(key)
        else:
            line, col = lc.line, lc.col
    except (KeyError, IndexError, TypeError):
        line, col = lc.line, lc.col
    return line + 1, col + 1


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


ACTION_KEYS = {"action", "drop", "to", "announcement", "answer_first"}
EMPLOYEE_KEYS = {"name", "endpoint", "ring_time", "mailbox", "language", "on_no_answer", "on_busy", "on_unreachable"}
DEPARTMENT_KEYS = {"name", "members", "strategy", "ring_time"}
SITE_KEYS = {"ring_time", "on_no_answer", "language", "max_forwards"}
TOP_KEYS = {"site", "employees", "departments"}


def _announcement(r: _Reader, node: CommentedMap, where: str) -> Announcement:
    value = node.get("announcement")
    if value is None:
        return Announcement()
    if isinstance(value, str):
        if value in ("standard", "none"):
            return Announcement(kind=value)
        r.error(node, "announcement", f"{where}.announcement: '{value}' is not one of standard, none, or a mapping {{file: ...}} / {{text: ...}}")
        return Announcement()
    if isinstance(value, CommentedMap):
        if "file" in value:
            return Announcement(kind="custom", file=r.string(value, "file", f"{where}.announcement"))
        if "text" in value:
            return Announcement(kind="tts", text=r.string(value, "text", f"{where}.announcement"))
        r.error(node, "announcement", f"{where}.announcement: expected 'file' or 'text'")
        return Announcement()
    r.error(node, "announcement", f"{where}.announcement: expected standard, none, or a mapping, got {_kind(value)}")
    return Announcement()


def _action(r: _Reader, parent: CommentedMap, key: str, where: str) -> Action | None:
    node = r.mapping(parent, key, f"{where}.{key}")
    if node is None:
        return None
    w = f"{where}.{key}"
    r.unknown_keys(node, ACTION_KEYS, w)
    kind = r.choice(node, "action", w, ("drop", "forward", "voicemail"), "drop")
    if "action" not in node:
        r.error(node, None, f"{w}: 'action' is required (drop, forward or voicemail)")
    target = r.string(node, "to", w)
    if kind == "forward" and target is None:
        r.error(node, None, f"{w}: a forward needs 'to' (an extension or a department)")
    answer_first = node.get("answer_first", False)
    if not isinstance(answer_first, bool):
        r.error(node, "answer_first", f"{w}.answer_first: expected true or false")
        answer_first = False
    return Action(
        kind=kind,  # type: ignore[arg-type]
        drop=r.choice(node, "drop", w, ("busy", "message"), "busy"),  # type: ignore[arg-type]
        target=target,
        announcement=_announcement(r, node, w),
        answer_first=answer_first,
    )


def _site(r: _Reader, doc: CommentedMap) -> SiteDefaults:
    node = r.mapping(doc, "site", "site")
    if node is None:
        return SiteDefaults()
    r.unknown_keys(node, SITE_KEYS, "site")
    default = SiteDefaults()
    return SiteDefaults(
        ring_time=r.integer(node, "ring_time", "site", MIN_RING_TIME, MAX_RING_TIME) or default.ring_time,
        on_no_answer=_action(r, node, "on_no_answer", "site") or default.on_no_answer,
        language=r.string(node, "language", "site") or default.language,
        max_forwards=r.integer(node, "max_forwards", "site", 0, 10) if "max_forwards" in node else default.max_forwards,  # type: ignore[arg-type]
    )


def _employees(r: _Reader, doc: CommentedMap) -> dict[str, Employee]:
    node = r.mapping(doc, "employees", "employees")
    result: dict[str, Employee] = {}
    for ext, body in (node or {}).items():
        where = f"employees.{ext}"
        if not isinstance(body, CommentedMap):
            r.error(node, ext, f"{where}: expected a mapping, got {_kind(body)}")
            continue
        r.unknown_keys(body, EMPLOYEE_KEYS, where)
        extension = str(ext)
        result[extension] = Employee(
            extension=extension,
            name=r.string(body, "name", where) or extension,
            endpoint=r.string(body, "endpoint", where) or f"PJSIP/{extension}",
            ring_time=r.integer(body, "ring_time", where, MIN_RING_TIME, MAX_RING_TIME),
            mailbox=r.string(body, "mailbox", where),
            language=r.string(body, "language", where),
            on_no_answer=_action(r, body, "on_no_answer", where),
            on_busy=_action(r, body, "on_busy", where),
            on_unreachable=_action(r, body, "on_unreachable", where),
        )
    return result


def _departments(r: _Reader, doc: CommentedMap) -> dict[str, Department]:
    node = r.mapping(doc, "departments", "departments")
    result: dict[str, Department] = {}
    for dep_id, body in (node or {}).items():
        where = f"departments.{dep_id}"
        if not isinstance(body, CommentedMap):
            r.error(node, dep_id, f"{where}: expected a mapping, got {_kind(body)}")
            continue
        r.unknown_keys(body, DEPARTMENT_KEYS, where)
        members = body.get("members") or []
        if not isinstance(members, list):
            r.error(body, "members", f"{where}.members: expected a list of extensions")
            members = []
        result[str(dep_id)] = Department(
            id=str(dep_id),
            name=r.string(body, "name", where) or str(dep_id),
            members=tuple(str(m) for m in members),
            strategy=r.choice(body, "strategy", where, ("ringall", "hunt", "memoryhunt", "random"), "ringall"),  # type: ignore[arg-type]
            ring_time=r.integer(body, "ring_time", where, MIN_RING_TIME, MAX_RING_TIME) or 20,
        )
    return result


def _check_references(r: _Reader, doc: CommentedMap, policy: Policy) -> None:
    known = set(policy.employees) | set(policy.departments)
    for dep_id, dep in policy.departments.items():
        if dep_id in policy.employees:
            r.error(doc["departments"], dep_id, f"departments.{dep_id}: the id is also an employee's extension")
        members = doc["departments"][dep_id].get("members") or []
        for i, member in enumerate(dep.members):
            if member not in policy.employees:
                r.error(members, i, f"departments.{dep_id}.members: unknown extension '{member}'")
    actions = [("site", doc.get("site"), policy.site.on_no_answer, "on_no_answer", None)]
    for ext, emp in policy.employees.items():
        body = doc["employees"][_original_key(doc["employees"], ext)]
        for key in ("on_no_answer", "on_busy", "on_unreachable"):
            actions.append((f"employees.{ext}", body, getattr(emp, key), key, ext))
    for where, body, action, key, own in actions:
        if action is None or action.kind != "forward" or action.target is None:
            continue
        node = body[key] if body is not None and key in body else body
        if action.target not in known:
            r.error(node, "to", f"{where}.{key}.to: unknown extension or department '{action.target}'")
        elif action.target == own:
            r.error(node, "to", f"{where}.{key}.to: an employee cannot forward to themselves")


def _original_key(node: CommentedMap, ext: str) -> Any:
    for key in node:
        if str(key) == ext:
            return key
    raise KeyError(ext)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([Problem(source, line, col, f"not valid YAML: {exc.problem or exc.context}")]) from None
    if doc is None:
        doc = CommentedMap()
    r = _Reader(source)
    if not isinstance(doc, CommentedMap):
        raise PolicyError([Problem(source, 1, 1, f"expected a mapping at the top, got {_kind(doc)}")])
    r.unknown_keys(doc, TOP_KEYS, "policy")
    policy = Policy(site=_site(r, doc), employees=_employees(r, doc), departments=_departments(r, doc), source=source)
    if not r.problems:
        _check_references(r, doc, policy)
    if r.problems:
        raise PolicyError(r.problems)
    return policy


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([Problem(str(path), 1, 1, f"cannot read the policy: {exc.strerror}")]) from None
    return parse_policy(text, str(path))
