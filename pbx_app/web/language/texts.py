"""The page in the reader's language: which one (the user's choice, kept with their user record;
before sign-in a cookie; else the browser's Accept-Language), and the texts, dates and times
in it. Texts come from the gettext catalogs (pbx_app/i18n.py); templates get per-render
gettext/ngettext (jinja's newstyle: %(name)s placeholders, escaped), the page's JS gets the
messages its files use as JSON (window.PBX_T, read by static/i18n.js)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from jinja2 import pass_context
from markupsafe import Markup

from ...i18n import DEFAULT_LANGUAGE, LANGUAGES, normalise, translator

COOKIE = "pbx_lang"
MAX_ACCEPT = 512  # an Accept-Language header is looked at up to this length
MAX_RANGES = 16
NAMES = {"en": "English", "ru": "Русский"}  # each language in its own words, for the switch
STATIC = Path(__file__).resolve().parent.parent / "static"
_JS_CALL = re.compile(r"""\bt\(\s*("(?:[^"\\\n]|\\.)*")\s*\)""")


def from_accept(header: str | None) -> str | None:
    """The language we speak that the browser likes best ('ru-RU,ru;q=0.9,en;q=0.8' → 'ru')."""
    best, best_q = None, 0.0
    for item in (header or "")[:MAX_ACCEPT].split(",")[:MAX_RANGES]:
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.strip().lower().split("-")[0]
        if code in LANGUAGES and q > best_q:
            best, best_q = code, q
    return best


def chosen(user_language: str | None, cookie: str | None, accept: str | None) -> str:
    for candidate in (user_language, cookie):
        if candidate and normalise(candidate) == candidate.lower():
            return candidate.lower()
    return from_accept(accept) or DEFAULT_LANGUAGE


def site_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Texts:
    """Everything said in one language: messages, plurals, dates and times (in the site's zone)."""

    language: str
    zone: ZoneInfo = ZoneInfo("UTC")

    def gettext(self, message: str) -> str:
        return translator(self.language).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translator(self.language).ngettext(singular, plural, n)

    def when(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return format_datetime(moment, "medium", tzinfo=self.zone, locale=self.language)

    def clock(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return format_datetime(moment, "HH:mm:ss", tzinfo=self.zone, locale=self.language)

    def seconds(self, value: float | None) -> str:
        if value is None:
            return ""
        value = round(value)
        if value < 60:
            return self.gettext("{s} s").format(s=value)
        return self.gettext("{m} min {s:02d} s").format(m=value // 60, s=value % 60)

    def template_context(self) -> dict[str, Any]:
        """gettext/ngettext for one render, newstyle: what {{ _("...") }} and {% trans %} call."""
        return {
            "gettext": _newstyle_gettext(self.gettext),
            "ngettext": _newstyle_ngettext(self.ngettext),
            "lang": self.language,
            "languages": NAMES,
            "js_catalog": js_catalog(self.language),
        }


def _newstyle_gettext(func: Callable[[str], str]):
    @pass_context
    def gettext(context, message: str, **variables) -> str:
        text = func(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables  # always a format string, as jinja's own newstyle gettext

    return gettext


def _newstyle_ngettext(func: Callable[[str, str, int], str]):
    @pass_context
    def ngettext(context, singular: str, plural: str, num: int, **variables) -> str:
        variables.setdefault("num", num)
        text = func(singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    return ngettext


def js_messages() -> list[str]:
    """Every t("...") message id in the page's JS files."""
    return sorted(js_messages_cached())


@lru_cache(maxsize=1)
def js_messages_cached() -> frozenset[str]:
    found: set[str] = set()
    for path in STATIC.glob("*.js"):
        for literal in _JS_CALL.findall(path.read_text(encoding="utf-8")):
            found.add(json.loads(literal))
    return frozenset(found)


@lru_cache(maxsize=len(LANGUAGES))
def js_catalog(language: str) -> dict[str, str]:
    """The JS files' messages in ``language`` (only those translated: t() falls back to the id)."""
    catalog = translator(language)
    return {m: catalog.gettext(m) for m in js_messages_cached() if catalog.gettext(m) != m}
