"""Asterisk's .conf syntax, as far as adding to a site's file safely needs it: which sections and
settings a file has, and whether every line is one Asterisk would read. A line that is none of
them is refused with its file:line:column before anything is written: we never edit what we do not
understand."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_SECTION = re.compile(r"^\[([^\]]+)\]\s*(\(([^)]*)\))?\s*$")
_DIRECTIVE = re.compile(r"^#\s*(include|tryinclude|exec)\b\s*\S")
_SETTING = re.compile(r"^([^=\s][^=]*?)\s*=>?\s*(.*)$")


class ConfError(ValueError):
    """A file we will not touch, named file:line:column."""


@dataclass
class Section:
    name: str
    options: str  # "(!)", "(+)", "(template)": as written between the parentheses
    settings: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        """The last value of ``key`` (later lines win in Asterisk's own readers)."""
        found = [v for k, v in self.settings if k.lower() == key.lower()]
        return found[-1] if found else None


def _strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """The line without its comments; whether a ;-- block comment is still open after it."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 3, False
            continue
        ch = line[i]
        if ch == "\\" and line[i + 1:i + 2] == ";":
            out.append(";")
            i += 2
        elif line.startswith(";--", i):
            in_block, i = True, i + 3
        elif ch == ";":
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out), in_block


def parse(text: str, name: str) -> list[Section]:
    """The file's sections in order ("" for settings before the first one). Raises ConfError."""
    sections = [Section("", "")]
    in_block = False
    for number, raw in enumerate(text.splitlines(), 1):
        line, in_block = _strip_comment(raw, in_block)
        stripped = line.strip()
        if not stripped:
            continue
        column = len(line) - len(line.lstrip()) + 1
        if stripped.startswith("["):
            m = _SECTION.match(stripped)
            if not m:
                raise ConfError(f"{name}:{number}:{column}: a section header that does not close: {raw.strip()[:60]!r}")
            sections.append(Section(m.group(1).strip(), (m.group(3) or "").strip()))
        elif stripped.startswith("#"):
            if not _DIRECTIVE.match(stripped):
                raise ConfError(f"{name}:{number}:{column}: not an #include, #tryinclude or #exec: {stripped[:60]!r}")
        else:
            m = _SETTING.match(stripped)
            if not m:
                raise ConfError(f"{name}:{number}:{column}: neither a section, a setting nor an #include: "
                                f"{stripped[:60]!r}")
            sections[-1].settings.append((m.group(1).strip(), m.group(2).strip()))
    if in_block:
        raise ConfError(f"{name}:{len(text.splitlines())}:1: a ;-- comment is never closed with --;")
    return sections


def read_text(path: Path) -> str:
    """A site's file as it is: bytes that are not UTF-8 (a Latin-1 comment) go back unchanged."""
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def read(path: Path) -> list[Section]:
    return parse(read_text(path), str(path))


def section(sections: list[Section], name: str) -> Section | None:
    """The first section called ``name`` that is not a (+) addition: the one Asterisk reads."""
    return next((s for s in sections if s.name == name and "+" not in s.options), None)


def value(sections: list[Section], name: str, key: str) -> str | None:
    """``key`` in section ``name``, counting the (+) additions to it, the last one winning."""
    found = None
    for s in sections:
        if s.name == name:
            found = s.get(key) if s.get(key) is not None else found
    return found


def includes(text: str) -> list[str]:
    """The files a text #includes, as written."""
    return [m.group(1).strip('"<> ') for m in re.finditer(r"^\s*#\s*(?:try)?include\s+(.+?)\s*$", text, re.M)]
