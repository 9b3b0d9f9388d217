"""Number patterns in Asterisk's extension-pattern syntax, which a telephony sysadmin already
writes: ``_79XXXXXXXXX``. Numbers are compared by their digits only (``+7 900 …`` is 7900…), so a
pattern is a row of digit classes, maybe open at the end:

  0-9 the digit itself    X any digit    Z 1-9    N 2-9    [13-5] one of the listed digits
  .   one or more digits (at the end)    !  zero or more digits (at the end)

The leading ``_`` is optional (a number is never letters), spaces and dashes are ignored for
readability. Pure: no I/O; ``compile_pattern`` raises PatternError naming the column."""

from __future__ import annotations

from dataclasses import dataclass

DIGITS = frozenset("0123456789")
CLASSES = {"X": DIGITS, "Z": frozenset("123456789"), "N": frozenset("23456789")}
MAX_DIGITS = 15  # E.164: no telephone number is longer
MAX_PATTERN = 64


class PatternError(ValueError):
    """``column``: 1-based, within the pattern text."""

    def __init__(self, message: str, column: int = 1):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Pattern:
    text: str
    classes: tuple[frozenset[str], ...]
    tail: str = ""  # "", "." (one or more digits more) or "!" (zero or more)

    def matches(self, digits: str) -> bool:
        """``digits``: a number with everything but its digits taken out."""
        extra = len(digits) - len(self.classes)
        if extra < 0 or (extra == 0 and self.tail == ".") or (extra > 0 and not self.tail):
            return False
        return all(d in c for d, c in zip(digits, self.classes))

    @property
    def shortest(self) -> int:
        return len(self.classes) + (1 if self.tail == "." else 0)

    def too_wide(self) -> str | None:
        """Why the pattern lets through any number of some length (None: it narrows them down)."""
        if any(c != DIGITS for c in self.classes):
            return None
        if self.tail:
            return f"matches every number of {self.shortest} digits or more"
        return f"matches every number of {len(self.classes)} digits"


def compile_pattern(text: str) -> Pattern:
    """The pattern, or PatternError when it can match no number at all (and says why)."""
    raw = str(text)
    if len(raw) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    i = 1 if raw.startswith("_") else 0
    classes: list[frozenset[str]] = []
    tail = ""
    while i < len(raw):
        ch, column = raw[i], i + 1
        if tail:
            raise PatternError(f"'{tail}' stands for the rest of the number and must come last", column - 1)
        if ch.isdigit():
            classes.append(frozenset(ch))
        elif ch.upper() in CLASSES:
            classes.append(CLASSES[ch.upper()])
        elif ch in ".!":
            tail = ch
        elif ch in " -":
            pass
        elif ch == "[":
            end = raw.find("]", i)
            if end < 0:
                raise PatternError("'[' without its ']'", column)
            classes.append(_digit_set(raw[i + 1:end], column))
            i = end
        elif ch == "+":
            raise PatternError("matches nothing: numbers are compared by their digits only; leave the '+' out", column)
        else:
            raise PatternError(f"matches nothing: '{ch}' is not a digit, X, Z, N, [..], '.' or '!'", column)
        i += 1
    if not classes and tail != ".":
        raise PatternError("matches nothing: no digits in it")
    pattern = Pattern(raw, tuple(classes), tail)
    if pattern.shortest > MAX_DIGITS:
        raise PatternError(f"matches nothing: it needs {pattern.shortest} digits and no number has more than {MAX_DIGITS}")
    return pattern


def _digit_set(inside: str, column: int) -> frozenset[str]:
    """``[13-5]`` → {1, 3, 4, 5}; an empty set matches nothing."""
    out: set[str] = set()
    j = 0
    while j < len(inside):
        ch = inside[j]
        if not ch.isdigit():
            raise PatternError(f"matches nothing: '{ch}' in [{inside}] is not a digit", column + 1 + j)
        if j + 2 < len(inside) and inside[j + 1] == "-":
            hi = inside[j + 2]
            if not hi.isdigit() or hi < ch:
                raise PatternError(f"matches nothing: [{inside}] has the range {ch}-{hi}, which holds no digit", column + 1 + j)
            out.update(str(d) for d in range(int(ch), int(hi) + 1))
            j += 3
        else:
            out.add(ch)
            j += 1
    if not out:
        raise PatternError("matches nothing: [] holds no digit", column)
    return frozenset(out)


def first_match(patterns: tuple[Pattern, ...], digits: str) -> Pattern | None:
    return next((p for p in patterns if p.matches(digits)), None)
