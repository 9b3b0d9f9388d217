"""Typed reads from the YAML tree: each bad value becomes a Problem at its line and column."""

from __future__ import annotations

from typing import Any


from .document import kind, position, source_of
from .problems import Problem


class Reader:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def error(self, node: Any, key: Any, message: str, at_key: bool = False) -> None:
        line, col = position(node, key, at_key)
        self.problems.append(Problem(source_of(node, key) or self.source, line, col, message))

    def warning(self, node: Any, key: Any, message: str) -> None:
        line, col = position(node, key)
        self.problems.append(Problem(source_of(node, key) or self.source, line, col, message, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def mapping(self, parent: Any, key: Any, where: str) -> dict | None:
        value = parent.get(key) if isinstance(parent, dict) else None
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(parent, key, f"{where}: expected a mapping, got {kind(value)}")
            return None
        return value

    def seq(self, parent: dict, key: str, where: str) -> list | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(parent, key, f"{where}: expected a list, got {kind(value)}")
            return None
        return value

    def string(self, node: dict, key: str, where: str, required: bool = False) -> str | None:
        if key not in node or node[key] is None:
            if required:
                self.error(node, None, f"{where}: '{key}' is required")
            return None
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.error(node, key, f"{where}.{key}: expected a string, got {kind(value)}")
            return None
        return str(value)

    def integer(self, node: dict, key: str, where: str, lo: int, hi: int, unit: str = "seconds") -> int | None:
        if key not in node or node[key] is None:
            return None
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, key, f"{where}.{key}: expected a whole number of {unit}, got {kind(value)}")
            return None
        if not lo <= value <= hi:
            self.error(node, key, f"{where}.{key}: {value} is out of range, expected {lo}..{hi} {unit}")
            return None
        return value

    def boolean(self, node: dict, key: str, where: str) -> bool:
        value = node.get(key, False)
        if not isinstance(value, bool):
            self.error(node, key, f"{where}.{key}: expected true or false, got {kind(value)}")
            return False
        return value

    def choice(self, node: dict, key: str, where: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.string(node, key, where)
        if value is None:
            return default
        if value not in allowed:
            self.error(node, key, f"{where}.{key}: '{value}' is not one of {', '.join(allowed)}")
            return default
        return value

    def unknown_keys(self, node: dict, allowed: set[str], where: str) -> None:
        if node.keys() <= allowed:  # the usual case, in one set operation (no key that is not text is allowed)
            return
        for key in node:
            if str(key) not in allowed:
                self.error(node, key, f"{where}: unknown key '{key}' (expected one of {', '.join(sorted(allowed))})", at_key=True)
