"""Message catalogs: the page and the notices speak the users' language (ru, en).

Texts live in gettext catalogs under pbx_app/locale/<lang>/LC_MESSAGES/pbx_app.po (compiled .mo
beside them); code marks them with _() / ngettext() and never holds a translated string."""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "pbx_app"
LANGUAGES = ("en", "ru")  # en is the source language: its catalog may stay empty
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Marks a message id for the catalogs where it is written; it is translated where it is shown."""
    return message


def normalise(language: str | None) -> str:
    """'ru-RU', 'RU', 'ru_RU.UTF-8' → 'ru'; anything we do not speak → the default."""
    code = (language or "").strip().lower().replace("_", "-").split(".")[0].split("-")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def translator(language: str | None) -> gettext.NullTranslations:
    return _catalog(normalise(language))  # the cache is keyed by the few languages we speak, never by raw input


@lru_cache(maxsize=len(LANGUAGES))
def _catalog(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)
