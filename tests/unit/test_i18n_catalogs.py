"""The page's message catalogs: every text the code, the templates and the JS mark is in the
Russian catalog, translated with the same placeholders; the compiled .mo the app loads is the
.po's; Russian plurals have their three forms."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from pbx_app.i18n import translator
from pbx_app.web.language.texts import js_catalog, js_messages

PACKAGE = Path(__file__).resolve().parents[2] / "pbx_app"
RU_PO = PACKAGE / "locale/ru/LC_MESSAGES/pbx_app.po"
RU_MO = RU_PO.with_suffix(".mo")
# The same places and markers as scripts/messages (babel.cfg).
METHODS = [("**.py", "python"), ("web/templates/**.html", "jinja2"), ("web/static/**.js", "javascript")]
OPTIONS = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "Step": None, "BadFilter": None, "t": None}
PLACEHOLDER = re.compile(r"\{[a-z_]+[^}]*\}|%\([a-z_]+\)[sd]")


def marked() -> dict[str | tuple[str, ...], str]:
    """Every message id marked in the package → where."""
    found = {}
    for filename, _, message, _, _ in extract_from_dir(PACKAGE, METHODS, OPTIONS, KEYWORDS):
        key = message if isinstance(message, str) else tuple(m for m in message if m)
        if isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        found[key] = filename
    return found


def catalog():
    with open(RU_PO, "rb") as f:
        return read_po(f)


def test_every_marked_text_is_translated_into_russian_with_its_placeholders():
    ru = catalog()
    texts = marked()
    assert len(texts) > 80 and "Call history" in texts and "voicemail, message left" in texts
    problems = []
    for key, where in texts.items():
        message = ru.get(key[0] if isinstance(key, tuple) else key)
        if message is None or not message.string or (isinstance(message.string, tuple) and not all(message.string)):
            problems.append(f"{where}: {key!r} has no Russian translation")
            continue
        ids = key if isinstance(key, tuple) else (key,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for s in strings:
            if set(PLACEHOLDER.findall(s)) != wanted:
                problems.append(f"{where}: {key!r}: the translation {s!r} has other placeholders")
    assert not problems, "\n".join(problems) + "\nrun scripts/messages, translate, commit the .po and .mo"


def test_the_compiled_catalog_is_the_po_file():
    # Compared by content: Babel versions lay the same catalog out in different bytes.
    compiled = io.BytesIO()
    write_mo(compiled, catalog())
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    with open(RU_MO, "rb") as f:
        shipped = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    stale = sorted(str(k)[:60] for k in expected.keys() ^ shipped.keys())
    stale += sorted(str(k)[:60] for k in expected.keys() & shipped.keys() if k != "" and expected[k] != shipped[k])
    assert not stale, f"pbx_app.mo is stale ({stale[:5]}): run scripts/messages compile"


def test_russian_plurals_have_three_forms():
    ru = translator("ru")
    said = [ru.ngettext("%(num)d call", "%(num)d calls", n) % {"num": n} for n in (1, 3, 5, 11, 21, 24)]
    assert said == ["1 звонок", "3 звонка", "5 звонков", "11 звонков", "21 звонок", "24 звонка"]
    assert catalog().num_plurals == 3
    en = translator("en")
    assert [en.ngettext("%(num)d call", "%(num)d calls", n) % {"num": n} for n in (1, 2)] == ["1 call", "2 calls"]


def test_the_pages_scripts_get_their_texts_in_russian():
    assert "The message cannot be played (it may have been deleted from the mailbox)." in js_messages()
    ru = js_catalog("ru")
    assert ru["The message cannot be played (it may have been deleted from the mailbox)."].startswith("Сообщение")
    assert js_catalog("en") == {}, "English is the source: t() falls back to the text itself"
