"""History rows as the page, the API and the CSV show them, in the reader's language. The rows
themselves (whom a call counts for, missed or not, what happened) are `pbx-app history`'s:
pbx_app/history/rows.py; the machine fields are report.as_dicts's, in the site's time zone."""

from __future__ import annotations

import csv
import io
from typing import Any

from ...history.report import CSV_COLUMNS, Names, as_dicts
from ...history.rows import VOICEMAIL, HistoryRow, describe
from ...i18n import N_
from ..language.texts import Texts
from .query import COUNT_CAP, Page

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such a
# cell gets a leading apostrophe, which spreadsheets show as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STATUS = {"answered": N_("Answered"), "missed": N_("Missed"), "in progress": N_("In progress")}


def voicemail_url(row: HistoryRow) -> str | None:
    return f"/api/history/{row.call_id}/voicemail" if row.label == VOICEMAIL else None


def shown(rows: list[HistoryRow], names: Names, texts: Texts) -> list[dict[str, Any]]:
    """One dict per row: the machine fields (as `pbx-app history --format json`) and the texts
    the page shows."""
    _ = texts.gettext
    out = []
    for row, machine in zip(rows, as_dicts(rows, names, texts.zone)):
        out.append({
            **machine,
            "what_happened_en": machine["what_happened"],
            "what_happened": describe(row.steps, _),
            "started": texts.when(row.started_at),
            "employee_cell": names.person(row.employee),
            "for_whom": _("for {who}").format(who=names.person(row.forwarded_from)) if row.forwarded_from else "",
            "label_text": _("Voicemail") if row.label == VOICEMAIL else "",
            "status_text": _(STATUS.get(row.status, row.status)),
            "missed": row.missed,
            "waited": texts.seconds(row.waited),
            "talked": texts.seconds(row.talked),
            "steps": [{"at": texts.clock(step.at), "text": step.say(_)} for step in row.steps],
            "voicemail_url": voicemail_url(row),
        })
    return out


def page_json(page: Page, names: Names, texts: Texts) -> dict[str, Any]:
    return {
        "rows": shown(page.rows, names, texts),
        "page": page.number, "pages": page.pages, "total": page.total, "missed": page.missed,
        "counted_up_to": COUNT_CAP, "more": page.more,
        "language": texts.language, "timezone": str(texts.zone),
    }


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def as_csv(rows: list[HistoryRow], names: Names, texts: Texts, header: bool = True) -> str:
    """The CSV of `pbx-app history`, its times in the site's zone, what happened in the reader's
    language, and no cell a spreadsheet would run. ``header`` False: a later part of a stream."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for d in shown(rows, names, texts):
        writer.writerow([safe_cell(d[c]) for c in CSV_COLUMNS])
    return out.getvalue()
