"""``site.outbound``: the toll-fraud guard's settings (pbx_app/outbound), read with every bad value
named at its file:line:column. A pattern that can match no number is an error (it is a typo:
a '+', a letter, a reversed range); one that lets any number of some length through, or no
``allow`` at all, is a warning, since the site may mean it."""

from __future__ import annotations

import re

from .patterns import Pattern, PatternError, compile_pattern
from .document import kind
from .model import MIN_OUTSIDE_DIGITS, OutboundSettings, Trunk
from .numbers import canonical_number
from .reader import Reader

OUTBOUND_KEYS = {"allow", "deny", "per_hour", "notify", "trunk"}
TRUNK_KEYS = {"endpoint", "format", "prefix", "present", "number"}
PER_HOUR_KEYS = {"number", "employee", "site"}
MAX_PATTERNS = 200
MAX_PER_HOUR = 100_000
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # also safe inside a Local channel's extension


def outbound(r: Reader, site: dict | None) -> OutboundSettings:
    default = OutboundSettings()
    node = r.mapping(site, "outbound", "site.outbound") if site is not None else None
    if node is None:
        return default
    r.unknown_keys(node, OUTBOUND_KEYS, "site.outbound")
    allow = _patterns(r, node, "allow")
    deny = _patterns(r, node, "deny")
    limits = r.mapping(node, "per_hour", "site.outbound.per_hour")
    per: dict[str, int] = {}
    if limits is not None:
        r.unknown_keys(limits, PER_HOUR_KEYS, "site.outbound.per_hour")
        for key in PER_HOUR_KEYS:
            value = r.integer(limits, key, "site.outbound.per_hour", 1, MAX_PER_HOUR, unit="calls")
            if value is not None:
                per[key] = value
    outcome = OutboundSettings(allow=allow, deny=deny, notify=_addresses(r, node),
                               per_number=per.get("number", default.per_number),
                               per_employee=per.get("employee", default.per_employee),
                               per_site=per.get("site", default.per_site), trunk=_trunk(r, node))
    if outcome.per_number > outcome.per_site:
        r.warning(limits, "number", f"site.outbound.per_hour.number: {outcome.per_number} calls to one number is more than the "
                                    f"site's {outcome.per_site}; the site's limit stops them first")
    return outcome


def _trunk(r: Reader, node: dict) -> Trunk | None:
    """``trunk: {endpoint: carrier, format: national, prefix: "", present: company, number: ...}``."""
    w = "site.outbound.trunk"
    body = r.mapping(node, "trunk", w)
    if body is None:
        return None
    r.unknown_keys(body, TRUNK_KEYS, w)
    endpoint = r.string(body, "endpoint", w, required=True)
    if endpoint is not None and not _ENDPOINT.match(endpoint):
        r.error(body, "endpoint", f"{w}.endpoint: '{endpoint[:40]}' is not a PJSIP endpoint name (letters, digits, "
                                  f"'_', '-', '.')")
        endpoint = None
    prefix = r.string(body, "prefix", w) or ""
    if prefix and not prefix.isdigit():
        r.error(body, "prefix", f"{w}.prefix: '{prefix[:20]}' is not digits (what the carrier wants before the number)")
        prefix = ""
    present = r.choice(body, "present", w, ("client", "company"), "client")
    number = r.string(body, "number", w)
    if number is not None and len(canonical_number(number)) < MIN_OUTSIDE_DIGITS:
        r.error(body, "number", f"{w}.number: '{number[:40]}' is not a telephone number (the company's, shown to "
                                f"whoever is called)")
        number = None
    if present == "company" and number is None:
        r.error(body, "present" if "number" not in body else "number",
                f"{w}: present: company needs 'number' (the company's number the carrier accepts as calling number)")
        present = "client"
    if endpoint is None:
        return None
    return Trunk(endpoint=endpoint, format=r.choice(body, "format", w, ("international", "plus", "national"),  # type: ignore[arg-type]
                                                    "international"),
                 prefix=prefix, present=present, number=number)  # type: ignore[arg-type]


def _patterns(r: Reader, node: dict, key: str) -> tuple[Pattern, ...]:
    where = f"site.outbound.{key}"
    items = r.seq(node, key, where)
    if items is None:
        return ()
    if len(items) > MAX_PATTERNS:
        r.error(node, key, f"{where}: at most {MAX_PATTERNS} patterns, got {len(items)}")
        return ()
    found: list[Pattern] = []
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            r.error(items, i, f"{where}[{i}]: expected a number pattern such as _79XXXXXXXXX, got {kind(item)}")
            continue
        try:
            pattern = compile_pattern(str(item))
        except PatternError as exc:
            said = f"'{item}' {exc}" if str(exc).startswith("matches") else f"'{item}': {exc}"
            r.error(items, i, f"{where}[{i}]: {said} (character {exc.column} of the pattern)")
            continue
        wide = pattern.too_wide()
        if wide is not None and key == "allow":
            r.warning(items, i, f"{where}[{i}]: '{item}' {wide}, premium-rate and international ones included: a forged "
                                f"calling number gets called back; write the country's prefixes (e.g. _79XXXXXXXXX)")
        elif wide is not None:
            r.warning(items, i, f"{where}[{i}]: '{item}' {wide}: nothing of that length is dialled")
        found.append(pattern)
    return tuple(found)


def _addresses(r: Reader, node: dict) -> tuple[str, ...]:
    items = r.seq(node, "notify", "site.outbound.notify")
    found = []
    for i, item in enumerate(items or ()):
        text = str(item).strip() if isinstance(item, str) else ""
        local, _, domain = text.partition("@")
        if not local or "." not in domain or any(ch.isspace() or ord(ch) < 32 for ch in text) or len(text) > 254:
            r.error(items, i, f"site.outbound.notify[{i}]: '{str(item)[:80]}' is not an e-mail address (name@domain)")
            continue
        found.append(text.lower())
    return tuple(found[:20])
