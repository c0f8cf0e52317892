"""The vitals form of every page that takes vitals: reading what was typed, and NEWS2 of it as typed.

The score and the 112 advice are ``schema/``'s (:func:`schema.news2.score`,
:func:`schema.dispatch.emergency_reasons`); this module only reads the form
and says the result in the page's language. The nurse's request form (server)
and the doctor's vitals form (laptop) both use it, with ``static/news2.js``.
"""

from flask import flash

from schema.dispatch import emergency_reasons
from schema.errors import HemsyncError
from schema.news2 import PARAMETERS, score

from . import i18n

__all__ = ["vitals_of", "typed_vitals", "news2_answer"]


def vitals_of(form):
    """The observation fields typed into the vitals form (numbers as numbers); ValueError for a bad one."""
    values = {}
    for name in PARAMETERS:
        text = (form.get(name) or "").strip().replace(",", ".")
        if not text:
            continue
        if name == "supplemental_o2":
            values[name] = text == "yes"
        elif name == "consciousness":
            values[name] = text.upper()
        elif name == "temperature":
            values[name] = float(text)
        else:
            values[name] = int(text)
    return values


def typed_vitals(form):
    """The vitals of a posted form, or None after telling the person (a flashed message) which were not numbers."""
    try:
        return vitals_of(form)
    except ValueError:
        flash(i18n.gettext("A vital sign is not a number: check the values."), "error")
        return None


def news2_answer(args, spo2_scale):
    """NEWS2 of the vitals in ``args`` on the patient's SpO2 scale, and whether to consider 112, as JSON data."""
    try:
        vitals = vitals_of(args)
        result = score({**vitals, "spo2_scale": spo2_scale or 1}) if vitals else None
    except (ValueError, HemsyncError):
        return {"total": None, "text": i18n.gettext("check the values"), "consider_112": False}
    reasons = emergency_reasons(result, args.get("retts_colour"))
    if result is None:
        text = "–"
    else:
        text = str(result.total) + (" " + i18n.gettext("(partial)") if result.partial else "")
    return {"total": result.total if result else None, "partial": result.partial if result else None,
            "band": result.band if result else None, "text": text, "consider_112": bool(reasons),
            "reasons": reasons}
