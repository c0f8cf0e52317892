"""Every text the server's and the laptop's pages show is in the Swedish catalogue.

Another language is then a translation, not an edit.
"""

import pathlib

from babel.messages.extract import extract_from_dir

from schema.followup import due, figures
from schema.records.visit_request import MACHINE, RETTS_COLOURS, URGENCIES
from schema.roles import INTEGRATION, ROLES
from client_sync.ui.today import STEP_LABELS
from schema.records import admission, care_plan, medication
from schema.records.visit import KINDS as VISIT_KINDS
from schema.records.visit import OUTCOMES
from server.pages.followup import CHARTS
from server.pages.session import NAV
from server.web import i18n

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Values the templates translate as they come (``_(entry.urgency)``): the schema's value lists,
#: the roles (an integration client's too, on the admin's users page), the queue's flags and
#: suggestion reasons, the escalation feed's kinds, the follow-up's due lists and reasons and its
#: charts' titles; the laptop's step buttons, visit outcomes, warnings' kinds and severities, and
#: rounds' and round items' statuses; the patient history's visit kinds, medications' and admissions'
#: statuses and care plans' kinds.
VALUES = (*URGENCIES, *MACHINE.rank, *RETTS_COLOURS, *ROLES, INTEGRATION,
          "news2_medium", "palliative", "recent_discharge",
          "named doctor (continuity)", "same municipality", "other",
          "deadline", "out_of_hours",
          *due.LISTS, *due.REASONS.values(), *figures.FIGURES, *figures.NO_DATA.values(),
          *(title for _, title, *_ in CHARTS),
          *STEP_LABELS.values(), *OUTCOMES, "allergy", "condition", "low", "high", "life_threatening",
          "active", "paused", "planned", "in_progress", "done", "deferred", "open",
          *VISIT_KINDS, *medication.MACHINE.rank, *admission.MACHINE.rank, *care_plan.KINDS)


def _extracted():
    """Every message the templates (``_()``) and the views (``gettext()``) name, with where."""
    method_map = [("**/templates/**.html", "jinja2.ext.babel_extract"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "refused": None}
    found = {}
    for folder in ("server/web", "server/pages", "client_sync/ui"):
        for filename, lineno, message, _, _ in extract_from_dir(ROOT / folder, method_map, keywords=keywords):
            message = message if isinstance(message, str) else message[0]
            found.setdefault(message, f"{folder}/{filename}:{lineno}")
    return found


def test_every_text_of_the_templates_and_views_is_translated_in_the_catalogue():
    catalogue = {m.id: m.string for m in i18n.catalogue() if m.id}
    found = _extracted()
    assert len(found) > 100, "the extraction found too little: is the keyword list right?"
    missing = {message: where for message, where in found.items() if not catalogue.get(message)}
    assert missing == {}


def test_every_value_the_pages_translate_as_it_comes_is_in_the_catalogue():
    catalogue = {m.id: m.string for m in i18n.catalogue() if m.id}
    labels = [label for links in NAV.values() for _, label in links]
    assert [value for value in (*VALUES, *labels) if not catalogue.get(value)] == []


def test_the_catalogue_holds_no_message_the_pages_no_longer_show():
    labels = {label for links in NAV.values() for _, label in links}
    used = set(_extracted()) | set(VALUES) | labels
    assert [m.id for m in i18n.catalogue() if m.id and m.id not in used] == []
