"""Checks across the whole policy, after each value was read: references, forward loops,
announcement files, and warnings about settings that are legal but probably not meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


from .document import locate, place
from .external import OutsideNumber, outside_number
from .model import MOBILE, Action, Policy, is_outside, normalise_number
from .problems import Problem
from .reader import Reader

SLOTS = ("on_no_answer", "on_busy", "on_unreachable", "on_absent")
SHORT_RING = 5  # s: a phone needs a few seconds to be picked up
LONG_FORWARD_RING = 60  # s: a caller who was already not answered rarely waits longer


class ActionAt(NamedTuple):  # 25,000 at 10,000 employees: a tuple costs less than a frozen dataclass
    path: tuple[str, ...]  # where the action is in the document
    action: Action
    owner: str | None  # whose action it is (an extension), None for the site default


def check_policy(r: Reader, doc: dict, policy: Policy, announcements: Path | None) -> None:
    actions = _actions(doc, policy)
    _references(r, doc, policy, actions)
    if policy.site.max_forwards > 1:
        _loops(r, doc, policy, actions)
    _announcements(r, doc, policy, announcements)
    _callbacks(r, doc, policy, actions)
    _outside(r, doc, policy, actions)
    _warnings(r, doc, policy, actions)


def check_employee(r: Reader, doc: dict, policy: Policy, ext: str, announcements: Path | None) -> None:
    """The errors one employee's entry can bring into a policy that was valid without the
    change (the page's save): its references, loops through it, its announcement files and
    callbacks. ``doc`` needs ``site`` and that one entry under ``employees``."""
    everyone = _actions(doc, policy) if policy.site.max_forwards > 1 else []
    own = [a for a in (everyone or _employee_actions(policy, ext)) if a.owner == ext and a.path[0] == "employees"]
    _references(r, doc, policy, own, only=ext)
    if everyone:
        _loops(r, doc, policy, everyone, only=ext)
    _announcements(r, doc, policy, announcements, only=ext)
    _callbacks(r, doc, policy, own)
    _outside(r, doc, policy, own, only=ext)


def _employee_actions(policy: Policy, ext: str) -> list[ActionAt]:
    emp = policy.employees[ext]
    found = [ActionAt(("employees", ext, slot), getattr(emp, slot), ext) for slot in SLOTS if getattr(emp, slot) is not None]
    return found + [ActionAt(a.path + ("then",), a.action.then, ext) for a in found if a.action.then is not None]


def _callbacks(r: Reader, doc: dict, policy: Policy, actions: list[ActionAt]) -> None:
    offers = [a for a in actions if a.action.kind == "callback"]
    if not policy.site.outbound.allow and (offers or _written(doc, ("site", "outbound"))):
        where = ("site", "outbound") if _written(doc, ("site", "outbound")) else offers[0].path
        _problem(r, doc, where, f"{'.'.join(where)}: site.outbound.allow lists no number patterns, so nothing external is "
                                f"dialled{' and no callback is offered' if offers else ''} (e.g. allow: [_79XXXXXXXXX])",
                 "warning")
    for a in actions:
        settings = a.action.callback
        if a.action.kind != "callback" or settings is None:
            continue
        where = ".".join(a.path)
        if settings.route is None and policy.site.callback_route is None:
            _problem(r, doc, a.path, f"{where}: a callback needs 'route' (how the client is dialled, e.g. "
                                     f"PJSIP/{{number}}@trunk) or site.callback_route")
        per_number = policy.site.outbound.per_number
        if settings.attempts > per_number and settings.retry_after * (settings.attempts - 1) < 3600:
            _problem(r, doc, a.path, f"{where}: {settings.attempts} attempts {settings.retry_after} s apart are more calls to "
                                     f"one number than site.outbound.per_hour.number ({per_number}) lets through in an "
                                     f"hour; the later ones wait for the hour to pass", "warning")
        if settings.attempts > 1 and settings.retry_after * (settings.attempts - 1) > settings.expires_after:
            _problem(r, doc, a.path, f"{where}: {settings.attempts} attempts {settings.retry_after} s apart do not fit "
                                     f"in expires_after {settings.expires_after} s", "warning")


def _outside(r: Reader, doc: dict, policy: Policy, actions: list[ActionAt], only: str | None = None) -> None:
    """Forwards to a mobile or an outside number, and "ring my mobile too": the number must be
    one the site lets the PBX dial, through its trunk, for an employee not barred from it."""
    for a in actions:
        target = a.action.target
        if a.action.kind != "forward" or target is None or target in policy.employees or target in policy.departments \
                or not is_outside(target):
            continue
        owner = policy.employees.get(a.owner) if a.owner is not None else None
        where = ".".join(a.path)
        if owner is None and target == MOBILE:
            continue  # the site default: each employee's own mobile, checked with each employee
        number = outside_number(policy, owner, target)
        if number.refusal is not None:
            _problem(r, doc, a.path + ("to",), f"{where}.to: {target} cannot be dialled: {number.refusal}"
                                               f"{IGNORED if number.problem == 'forbidden' else ''}", _severity(number))
        elif a.action.whisper:
            _problem(r, doc, a.path + ("whisper",), f"{where}.whisper: a whisper is for forwards to colleagues; an "
                                                    f"outside leg hears the confirm prompt instead", "warning")
    for ext, emp in (policy.employees.items() if only is None else [(only, policy.employees[only])]):
        if emp.ring_mobile is not None:
            number = outside_number(policy, emp, MOBILE)
            ring = emp.ring_time or policy.site.ring_time
            if number.refusal is not None:
                # A number the site does not allow is the mobile's fault; the rest, ring_mobile's.
                key = "mobile" if number.problem == "pattern" and _written(doc, ("employees", ext, "mobile")) else "ring_mobile"
                _problem(r, doc, ("employees", ext, key),
                         f"employees.{ext}.{key}: the mobile cannot be rung: {number.refusal}"
                         f"{IGNORED if number.problem == 'forbidden' else ''}", _severity(number))
            elif emp.ring_mobile.after >= ring:
                _problem(r, doc, ("employees", ext, "ring_mobile", "after"),
                         f"employees.{ext}.ring_mobile.after: {emp.ring_mobile.after} s is not within the ring time "
                         f"({ring} s): the mobile would never ring")
        elif emp.mobile is not None and emp.external_forwarding and policy.site.outbound.trunk is not None:
            number = outside_number(policy, emp, MOBILE)
            if number.refusal is not None:
                _problem(r, doc, ("employees", ext, "mobile"), f"employees.{ext}.mobile: {number.refusal}", "warning")


# The administrator's switch wins over the employee's own settings without breaking the policy:
# the decision leaves the leg out (and says why), the page refuses to add one.
IGNORED = "; ignored: calls ring the desk phone only"


def _severity(number: OutsideNumber) -> str:
    return "warning" if number.problem == "forbidden" else "error"


def _written(doc: Any, path: tuple[str, ...]) -> bool:
    for step in path:
        if not isinstance(doc, dict) or step not in doc:
            return False
        doc = doc[step]
    return True


def _problem(r: Reader, doc: Any, path: tuple, message: str, severity: str = "error") -> None:
    source, line, col = place(doc, path)
    r.problems.append(Problem(source or r.source, line, col, message, severity))  # type: ignore[arg-type]


def _actions(doc: dict, policy: Policy) -> list[ActionAt]:
    found = [ActionAt(("site", "on_no_answer"), policy.site.on_no_answer, None)]
    for ext, emp in policy.employees.items():
        for slot in SLOTS:
            action = getattr(emp, slot)
            if action is not None:
                found.append(ActionAt(("employees", ext, slot), action, ext))
    clients = (doc.get("crm") or {}).get("clients") if isinstance(doc.get("crm"), dict) else None
    for number, body in (clients or {}).items() if isinstance(clients, dict) else ():
        rule = policy.crm.clients.get(normalise_number(number))
        if rule is not None and rule.on_no_answer is not None:
            found.append(ActionAt(("crm", "clients", str(number), "on_no_answer"), rule.on_no_answer, rule.manager))
    # A callback offer's fallback is an action of the same owner, checked like the others.
    found += [ActionAt(a.path + ("then",), a.action.then, a.owner) for a in found if a.action.then is not None]
    return found


def _references(r: Reader, doc: dict, policy: Policy, actions: list[ActionAt], only: str | None = None) -> None:
    known = _Known(policy)
    for dep_id, dep in (policy.departments.items() if only is None else ()):
        if dep_id in policy.employees:
            _problem(r, doc, ("departments", dep_id), f"departments.{dep_id}: the id is also an employee's extension; forwards to '{dep_id}' would be ambiguous")
        for i, member in enumerate(dep.members):
            if member not in policy.employees:
                _problem(r, doc, ("departments", dep_id, "members", i), f"departments.{dep_id}.members: unknown extension '{member}' (not under employees)")
            elif dep.members.index(member) < i:
                _problem(r, doc, ("departments", dep_id, "members", i), f"departments.{dep_id}.members: '{member}' is listed twice")
    for a in actions:
        if a.action.kind != "forward" or a.action.target is None or (a.action.target not in known and is_outside(a.action.target)):
            continue  # outside targets: _outside
        where = ".".join(a.path)
        if a.action.target not in known:
            _problem(r, doc, a.path + ("to",), f"{where}.to: unknown extension or department '{a.action.target}' (expected one of the employees or departments)")
        elif a.action.target == a.owner and a.path[0] == "employees":
            _problem(r, doc, a.path + ("to",), f"{where}.to: {a.owner} forwards to themselves; forward to a colleague, a department or voicemail")
        elif a.action.target == a.owner:
            _problem(r, doc, a.path + ("to",), f"{where}.to: forwards to the responsible manager {a.owner} who was just rung; forward to someone else")
    for ext, employee in (policy.employees.items() if only is None else [(only, policy.employees[only])]):
        for i, who in enumerate(employee.voicemail_to):
            if "@" not in who and who not in known:
                _problem(r, doc, ("employees", ext, "voicemail_to", i), f"employees.{ext}.voicemail_to: unknown extension or department '{who}' (expected one of the employees, departments or an e-mail address)")
    clients = doc["crm"]["clients"] if isinstance(doc.get("crm"), dict) and isinstance(doc["crm"].get("clients"), dict) else {}
    for number, body in (clients.items() if only is None else ()):
        manager = body.get("manager") if isinstance(body, dict) else None
        if manager is not None and str(manager) not in policy.employees:
            _problem(r, doc, ("crm", "clients", str(number), "manager"), f"crm.clients.{number}.manager: unknown extension '{manager}' (the responsible manager must be under employees)")


class _Known:
    """An employee's extension or a department's id (no set of 10,000 built per check)."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def __contains__(self, name: object) -> bool:
        return name in self.policy.employees or name in self.policy.departments


def _loops(r: Reader, doc: dict, policy: Policy, actions: list[ActionAt], only: str | None = None) -> None:
    """A chain of forwards that comes back to where it started. Only a loop when a chain can be
    longer than one forward (site.max_forwards > 1): with one forward, two colleagues covering
    for each other is the usual set-up, not a loop."""
    edges: dict[str, list[tuple[str, tuple]]] = {}
    for a in actions:
        if a.owner is None or a.path[0] != "employees" or a.action.kind != "forward" or not a.action.target:
            continue
        dep = policy.departments.get(a.action.target)
        if dep is not None and a.owner in dep.members:
            continue  # "forward to my own team": the team rings without them
        edges.setdefault(a.owner, []).append((a.action.target, a.path + ("to",)))
    for dep_id, dep in policy.departments.items():
        for i, member in enumerate(dep.members):
            edges.setdefault(dep_id, []).append((member, ("departments", dep_id, "members", i)))
    reported: set[frozenset] = set()
    for a in sorted(actions, key=lambda a: locate(doc, a.path + ("to",))):
        if a.owner is None or a.owner not in edges or (only is not None and a.owner != only):
            continue
        cycle = _cycle_from(a.owner, edges)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        first = min((path for node, (nxt, path) in _cycle_edges(cycle, edges) if path[0] == "employees"), key=lambda p: locate(doc, p))
        chain = " → ".join(cycle + [cycle[0]])
        _problem(
            r, doc, first,
            f"{'.'.join(first)}: forward loop {chain}: with site.max_forwards {policy.site.max_forwards} a call comes back to "
            f"someone already rung; break the loop or set site.max_forwards: 1",
        )


def _cycle_from(start: str, edges: dict[str, list[tuple[str, tuple]]]) -> list[str] | None:
    """The shortest chain start → … → start, if any (breadth first, so the message is short)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt, _ in edges.get(node, []):
                if nxt == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(parents[chain[-1]])
                    return list(reversed(chain))
                if nxt not in parents:
                    parents[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return None


def _cycle_edges(cycle: list[str], edges: dict[str, list[tuple[str, tuple]]]):
    for i, node in enumerate(cycle):
        nxt = cycle[(i + 1) % len(cycle)]
        for target, path in edges.get(node, []):
            if target == nxt:
                yield node, (target, path)
                break


def _announcement_places(doc: dict, only: str | None = None):
    """(path, value) of every mapping whose announcement is a mapping ({file: …}, {text: …}) in
    the document (only ``only``'s)."""
    site = doc.get("site")
    if only is None and isinstance(site, dict) and isinstance(site.get("on_no_answer"), dict):
        yield ("site", "on_no_answer"), site["on_no_answer"]
    employees = doc.get("employees")
    for ext, body in (employees.items() if isinstance(employees, dict) else ()):
        if not isinstance(body, dict) or (only is not None and str(ext) != only):
            continue
        if isinstance(body.get("announcement"), dict):
            yield ("employees", str(ext)), body
        for slot in SLOTS:
            value = body.get(slot)
            if isinstance(value, dict) and isinstance(value.get("announcement"), dict):
                yield ("employees", str(ext), slot), value
    crm = doc.get("crm") if only is None else None
    clients = crm.get("clients") if isinstance(crm, dict) else None
    for number, body in (clients.items() if isinstance(clients, dict) else ()):
        if isinstance(body, dict) and isinstance(body.get("on_no_answer"), dict):
            yield ("crm", "clients", str(number), "on_no_answer"), body["on_no_answer"]


def announcement_file_exists(folder: Path, name: str) -> bool:
    """Asterisk plays ``sound:NAME`` from NAME.<format>: any extension will do."""
    path = Path(name) if name.startswith("/") else folder / name
    if path.suffix and path.is_file():
        return True
    stem = path.with_suffix("") if path.suffix else path
    return stem.parent.is_dir() and any(p.is_file() for p in stem.parent.glob(stem.name + ".*"))


def _announcements(r: Reader, doc: dict, policy: Policy, folder: Path | None, only: str | None = None) -> None:
    folder_missing_reported = False
    for path, node in _announcement_places(doc, only):
        value = node.get("announcement")
        if not isinstance(value, dict):
            continue
        where = ".".join(path + ("announcement",))
        file, text = value.get("file"), value.get("text")
        if file is None and isinstance(text, str):
            _problem(r, doc, path + ("announcement", "text"),
                     f"{where}: the text is not rendered to a file yet; callers hear the standard announcement "
                     f"until it is (save it in the web UI)", "warning")
            continue
        if not isinstance(file, (str, int)) or folder is None:
            continue
        if not folder.is_dir():
            if not folder_missing_reported:
                _problem(r, doc, path + ("announcement", "file"),
                         f"{where}.file: cannot check announcement files: the folder {folder} does not exist "
                         f"(set site.announcements_dir or PBX_ANNOUNCEMENTS_DIR, or pass --announcements)", "warning")
                folder_missing_reported = True
            continue
        if not announcement_file_exists(folder, str(file)):
            expected = f"{file}" if Path(str(file)).suffix else f"{file}.wav or {file} in another sound format"
            _problem(r, doc, path + ("announcement", "file"),
                     f"{where}.file: announcement file '{file}' not found in {folder} (expected {expected} there)")


def _ring_time(policy: Policy, target: str) -> int | None:
    if target in policy.departments:
        return policy.departments[target].ring_time
    emp = policy.employees.get(target)
    return None if emp is None else (emp.ring_time or policy.site.ring_time)


def _warnings(r: Reader, doc: dict, policy: Policy, actions: list[ActionAt]) -> None:
    if policy.site.ring_time < SHORT_RING and isinstance(doc.get("site"), dict) and "ring_time" in doc["site"]:
        _problem(r, doc, ("site", "ring_time"), f"site.ring_time: {policy.site.ring_time} s is hardly time to pick a phone up (expected {SHORT_RING} s or more)", "warning")
    for ext, emp in policy.employees.items():
        if emp.ring_time is not None and emp.ring_time < SHORT_RING:
            _problem(r, doc, ("employees", ext, "ring_time"),
                     f"employees.{ext}.ring_time: {emp.ring_time} s is hardly time to pick a phone up (expected {SHORT_RING} s or more)", "warning")
        if emp.on_absent is not None and emp.schedule is None and not emp.absences:
            _problem(r, doc, ("employees", ext, "on_absent"),
                     f"employees.{ext}.on_absent: never used: {ext} has no schedule and no absences", "warning")
        if emp.schedule is not None and not any(emp.schedule.days):
            _problem(r, doc, ("employees", ext, "schedule"),
                     f"employees.{ext}.schedule: no working hours on any day: {ext} is never rung", "warning")
    for dep_id, dep in policy.departments.items():
        if len(dep.members) == 1:
            _problem(r, doc, ("departments", dep_id, "members"),
                     f"departments.{dep_id}.members: only one member ({dep.members[0]}); a forward to {dep.members[0]} says the same more plainly", "warning")
        elif not dep.members:
            _problem(r, doc, ("departments", dep_id),
                     f"departments.{dep_id}: no members; a forward here rings nobody", "warning")
    for a in actions:
        if a.action.kind != "forward" or not a.action.target or a.action.target == a.owner:
            continue
        ring = _ring_time(policy, a.action.target)
        if ring is not None and ring > LONG_FORWARD_RING:
            _problem(r, doc, a.path + ("to",),
                     f"{'.'.join(a.path)}.to: {a.action.target} then rings for {ring} s; a caller who was already not answered "
                     f"rarely waits that long (set its ring_time to {LONG_FORWARD_RING} s or less)", "warning")
    if policy.crm.webhook is not None and policy.crm.webhook.timeout_ms > 2000:
        _problem(r, doc, ("crm", "webhook", "timeout_ms"),
                 f"crm.webhook.timeout_ms: callers may wait {policy.crm.webhook.timeout_ms} ms before the phone rings when the CRM is slow", "warning")
