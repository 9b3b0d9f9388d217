"""What happened to a call, leg by leg, in the reader's language: the notices' short version
of the history's "what happened" (pbx_app/history/rows.py), built from a notice's facts. Texts
are gettext msgids in English; pbx_app/i18n.py finds their translations."""

from __future__ import annotations

from gettext import NullTranslations

from ..answered import extensions, where_answered
from ..history.records import WHILE_DOWN


def person(facts: dict, ext: str | None) -> str:
    """'102 Petr Ivanov', or the bare extension."""
    if not ext:
        return "?"
    name = facts.get("names", {}).get(ext) or (facts.get("employee_name") if ext == facts.get("employee") else "")
    return f"{ext} {name}" if name else ext


def _where(facts: dict, leg: dict) -> str:
    department = leg.get("department")
    if department:
        return facts.get("departments", {}).get(department) or department
    # a desk phone and a mobile ringing together are one person
    return ", ".join(person(facts, t) for t in extensions(leg.get("targets") or ())) or "?"


def _outside_only(leg: dict) -> tuple[str, str] | None:
    """(employee, "mobile" or the number) when the leg rang only outside the PBX."""
    rung = [where_answered(t) for t in leg.get("targets") or ()]
    places = {place for _, place in rung}
    return rung[0] if rung and len(places) == 1 and "" not in places else None


def what_happened(facts: dict, t: NullTranslations) -> list[str]:
    _ = t.gettext
    lines: list[str] = []
    legs = facts.get("legs") or []
    if legs and not any(l.get("role") == "employee" for l in legs):
        lines.append(_("not rung: away, or a rule sent the call elsewhere"))
    for leg in legs:
        role, outcome = leg.get("role"), leg.get("outcome")
        place = leg.get("answered_on") if outcome == "answered" else None
        if role == "employee" and place:
            lines.append(_("{who} answered on the mobile").format(who=_where(facts, leg)) if place == "mobile" else
                         _("{who} answered on {number}").format(who=_where(facts, leg), number=place))
        elif role == "forward" and place:
            who = person(facts, leg.get("answered_by"))
            lines.append(_("forwarded to the mobile of {who}, answered").format(who=who) if place == "mobile" else
                         _("forwarded to {number}, answered").format(number=place))
        elif role == "employee":
            who = _where(facts, leg)
            lines.append({
                "answered": _("{who} answered"),
                "busy": _("{who} was busy"),
                "unreachable": _("{who} was unreachable"),
                "caller_hung_up": _("the caller hung up while {who} was ringing"),
            }.get(outcome or "", _("{who} did not answer")).format(who=who))
        elif role == "forward":
            where = _where(facts, leg)
            if outcome == "answered":
                lines.append(_("forwarded to {where}, answered by {who}").format(where=where, who=person(facts, leg.get("answered_by"))))
            elif outcome == "caller_hung_up":
                lines.append(_("forwarded to {where}, the caller hung up while it rang").format(where=where))
            elif outside := _outside_only(leg):
                ext, place = outside
                lines.append(_("forwarded to the mobile of {who}, not answered").format(who=person(facts, ext)) if place == "mobile"
                             else _("forwarded to {number}, not answered").format(number=place))
            else:
                lines.append(_("forwarded to {where}, not answered").format(where=where))
        elif role == "voicemail":
            lines.append(_("voicemail: a message was left") if outcome == "message_left" else _("voicemail: no message left"))
        elif role == "announcement" and outcome is None and facts.get("result") == "caller_hung_up":
            lines.append(_("the caller hung up during the announcement"))
        elif role == "drop_message":
            lines.append(_("a message was played, then the call ended"))
    detail, result = facts.get("detail") or "", facts.get("result")
    if WHILE_DOWN in detail:
        lines.append(_("handled while the app was down"))
    elif result == "failed":
        lines.append(_("an internal error; the caller got the busy tone"))
    elif result == "dropped" and detail == "busy":
        lines.append(_("the caller got the busy tone"))
    return lines
