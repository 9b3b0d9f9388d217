"""One employee's entry cut out of a big policy's text, edited and put back.

A page save changes one entry. Round-tripping the whole file through ruamel took a minute at
10,000 employees; here only the entry's own lines are: they are cut out (dedented), loaded
with comments, changed, dumped in the file's own indentation and put back in place, so every
other byte of the file stays as it was. The new entry is then checked with libyaml against the
policy already in force (check_employee): the rest of the file was valid and did not change.

Where the entry is not laid out as plain block YAML (a flow mapping, a comment less indented
than it inside it, a tab), ``cut`` gives None and the caller round-trips the whole file."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable

from ruamel.yaml.comments import CommentedMap

from ...policy import Policy
from ...policy.checks import check_employee
from ...policy.document import read_yaml, original_key
from ...policy.loader import read_employee
from ...policy.problems import Problem
from ...policy.reader import Reader


@dataclass(frozen=True)
class Entry:
    """Lines ``start``..``end`` (0-based, end excluded) of the text hold the entry; its key
    stands at ``column``."""

    start: int
    end: int
    column: int


def entry_lines(doc: Any, ext: str, line_count: int) -> Entry | None:
    """Where ``ext``'s entry is, from the marks of the document as read; None when it is not a
    block entry under a block ``employees`` mapping."""
    employees = doc.get("employees") if isinstance(doc, dict) else None
    key = original_key(employees, ext)
    marks = getattr(employees, "lc", None)
    if key is None or marks is None or not isinstance(getattr(marks, "places", None), dict):
        return None
    start, column = marks.places[key][:2]
    later = [place[0] for place in marks.places.values() if place[0] > start]
    top = getattr(doc, "lc", None)
    later += [place[0] for place in top.places.values() if place[0] > start] if top is not None else []
    return Entry(start, min(later, default=line_count), column)


def cut(lines: list[str], entry: Entry) -> tuple[str, int] | None:
    """The entry's text dedented to column 0, and the line where it ends once blank lines and
    comments that belong to what follows are left out."""
    end = entry.end
    while end > entry.start + 1 and _trailing(lines[end - 1], entry.column):
        end -= 1
    pad = " " * entry.column
    head = lines[entry.start]
    if not head.startswith(pad) or head[entry.column:entry.column + 1] in (" ", "\t", "{", "-", ""):
        return None
    out = []
    for line in lines[entry.start:end]:
        if "\t" in line[:len(line) - len(line.lstrip())]:
            return None
        if line.strip() and not line.startswith(pad):
            return None  # something less indented inside the entry: not a plain block
        out.append(line[entry.column:] if line.strip() else line.lstrip(" "))
    return "".join(out), end


def _trailing(line: str, column: int) -> bool:
    stripped = line.lstrip(" ")
    return not stripped.strip() or (stripped.startswith("#") and len(line) - len(stripped) <= column)


def indented(text: str, column: int) -> str:
    pad = " " * column
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def edited_entry(fragment: str, ext: str, change: Callable[[CommentedMap], None], yaml_for, keeping_tail) -> str:
    """The fragment (``"101":`` and its body) with ``change`` made to the body, as ruamel
    writes it back in the fragment's own style."""
    yaml = yaml_for(fragment)
    doc = yaml.load(fragment)
    entry = doc[original_key(doc, ext)]
    with keeping_tail(entry):
        change(entry)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def checked_entry(fragment: str, ext: str, start: int, column: int, before_doc: Any, policy: Policy,
                  source: str, announcements) -> tuple[Any, Policy | None, list[Problem]]:
    """The new entry read with libyaml (marks moved to where it stands in the file) and the
    policy with it in place, or the errors it would bring."""
    tree, problems = read_yaml(fragment, source)
    problems = [_moved(p, start, column) for p in problems]
    if not isinstance(tree, dict) or len(tree) != 1 or original_key(tree, ext) is None:
        return None, None, problems or [Problem(source, start + 1, column + 1, f"employees.{ext}: the entry did not survive the edit")]
    _shift(tree, start, column)
    policy_after, errors = checked_table(tree, ext, before_doc, policy, source, announcements, problems)
    return tree, policy_after, errors


def checked_table(table: dict, ext: str, before_doc: Any, policy: Policy, source: str, announcements,
                  problems: list[Problem] = ()) -> tuple[Policy | None, list[Problem]]:
    """``policy`` with ``table[ext]`` (a mapping read with marks) as ``ext``'s entry, or the
    errors that entry brings."""
    r = Reader(source)
    r.problems.extend(problems)
    employee = read_employee(r, table, original_key(table, ext))
    if employee is None or r.errors:
        return None, r.errors
    employees = dict(policy.employees)
    employees[ext] = employee
    after = Policy(site=policy.site, employees=employees, departments=policy.departments, source=policy.source,
                   crm=policy.crm)
    check_employee(r, {"site": before_doc.get("site"), "employees": table}, after, ext, announcements)
    return (None if r.errors else after), r.errors


def _moved(p: Problem, start: int, column: int) -> Problem:
    return Problem(p.source, p.line + start, p.column + column, p.message, p.severity)


def _shift(node: Any, lines: int, columns: int) -> None:
    marks = getattr(node, "lc", None)
    if marks is not None and hasattr(marks, "places"):
        marks.line, marks.col = marks.line + lines, marks.col + columns
        if isinstance(marks.places, dict):
            marks.places = {k: (a + lines, b + columns, c + lines, d + columns) for k, (a, b, c, d) in marks.places.items()}
        else:
            marks.places = [(a + lines, b + columns, c + lines, d + columns) for a, b, c, d in marks.places]
    if isinstance(node, dict):
        for value in node.values():
            _shift(value, lines, columns)
    elif isinstance(node, list):
        for value in node:
            _shift(value, lines, columns)
