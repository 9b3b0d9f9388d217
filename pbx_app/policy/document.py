"""The YAML text as a tree that remembers where each value stood, so errors can point at it.
Duplicate keys are found here (ruamel stops at the first one; we report each, with both places)."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import Problem


# ruamel's words for the usual slips, and what a sysadmin should look at.
_HINTS = (
    ("found character '\\t'", "a tab: indent with spaces only"),
    ("expected <block end>", "the indentation of this line does not match the lines above it"),
    ("mapping values are not allowed here", "a ':' where it cannot be: quote the value, or check the indentation"),
    ("could not find expected ':'", "a key without ':' (or a value that needs quotes)"),
    ("found undefined alias", "an alias (*name) with no anchor (&name) above it"),
    ("found unexpected end of stream", "a quote or bracket that is never closed"),
)


def _yaml_problem(exc: MarkedYAMLError, source: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = exc.problem or exc.context or "cannot be read"
    hint = next((h for needle, h in _HINTS if needle in what), None)
    return Problem(source, line, col, f"not valid YAML: {hint} ({what})" if hint else f"not valid YAML: {what}")


def read_yaml(text: str, source: str) -> tuple[Any, list[Problem]]:
    """The document (None when it cannot be read at all) and the problems found reading it."""
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)  # one pass in the usual case; duplicates take the slow path below
        return doc, list(_mixed_duplicates(doc, source, ()))
    except DuplicateKeyError:
        pass
    except MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, source)]
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, source)]
    problems = list(_duplicates(root, source, ()))
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # reported above; read on to find the other errors too
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:  # e.g. an unknown tag: composes, does not construct
        return None, problems + [_yaml_problem(exc, source)]
    return doc, problems


def _duplicate_message(path: tuple[str, ...], name: str, line: int, col: int) -> str:
    what = "extension" if path == ("employees",) else "department" if path == ("departments",) else "key"
    where = ".".join(path) or "the top level"
    return f"{where}: duplicate {what} '{name}' (already defined at line {line}, column {col}); each may appear once"


def _mixed_duplicates(node: Any, source: str, path: tuple[str, ...]):
    """Keys that differ in YAML but not to us: 101 (a number) and "101" (a string)."""
    if isinstance(node, CommentedMap):
        seen: dict[str, Any] = {}
        for key, value in node.items():
            name = str(key)
            if name in seen:
                first, here = position(node, seen[name], at_key=True), position(node, key, at_key=True)
                if here < first:
                    first, here = here, first
                yield Problem(source, here[0], here[1], _duplicate_message(path, name, *first))
            else:
                seen[name] = key
            yield from _mixed_duplicates(value, source, path + (name,))
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            yield from _mixed_duplicates(item, source, path + (str(i),))


def _duplicates(node: Node | None, source: str, path: tuple[str, ...]):
    if isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else None
            if name is not None and name in seen:
                mark = seen[name].start_mark
                message = _duplicate_message(path, name, mark.line + 1, mark.column + 1)
                yield Problem(source, key.start_mark.line + 1, key.start_mark.column + 1, message)
            elif name is not None:
                seen[name] = key
            yield from _duplicates(value, source, path + (name or "?",))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, source, path + (str(i),))


def position(node: Any, key: Any = None, at_key: bool = False) -> tuple[int, int]:
    """1-based line and column of ``node[key]`` (its key when the value is a mapping, a list or
    empty, or ``at_key``; else the value), or of ``node`` itself."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    try:
        if key is not None and isinstance(node, CommentedMap) and key in node:
            if at_key or isinstance(node[key], (CommentedMap, CommentedSeq)) or node[key] is None:
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


def original_key(node: Any, name: str) -> Any:
    """The key as written: ``101`` unquoted is an int in YAML, ``"101"`` a string."""
    if isinstance(node, dict):
        for key in node:
            if str(key) == name:
                return key
    return None


def locate(doc: Any, path: tuple[str | int, ...]) -> tuple[int, int]:
    """Where ``doc[path[0]][path[1]]…`` stands; the nearest existing parent if it does not."""
    node, key = doc, None
    for i, step in enumerate(path):
        if isinstance(node, dict):
            real = original_key(node, str(step))
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            real = step
        else:
            real = None
        if real is None:
            return position(node, None)
        if i == len(path) - 1:
            return position(node, real)
        node = node[real]
    return position(node, key)


def kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
