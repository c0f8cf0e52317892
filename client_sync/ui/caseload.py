"""The doctor's caseload on the laptop: the patients this laptop holds, by municipality and SÄBO unit.

Searchable by name or personnummer with the server's search rule
(:func:`server.web.search.matches`); every patient listed is written to the
access log.
"""

from flask import request

from server.web.search import matches

from .context import blueprint, page, replica, snapshot

__all__ = ["SHOWN_LIMIT", "caseload_groups"]

#: Most patients one page lists: a longer list is a sign to search.
SHOWN_LIMIT = 200


def caseload_groups(patients):
    """The patients' fields grouped by municipality, then SÄBO facility and unit ('' for those at home), sorted."""
    groups = {}
    for fields in sorted(patients, key=lambda f: (f.get("name") or "", f["id"])):
        sabo = fields.get("care_setting") == "sabo"
        place = ", ".join(filter(None, (fields.get("facility"), fields.get("unit")))) if sabo else ""
        groups.setdefault(fields.get("municipality") or "", {}).setdefault(place, []).append(fields)
    return {m: dict(sorted(places.items())) for m, places in sorted(groups.items())}


@blueprint.get("/caseload")
def caseload():
    """The patients of this laptop by municipality and SÄBO unit; ``?q=`` searches name or personnummer."""
    query = request.args.get("q", "").strip()
    with snapshot():
        every = [(p, p.fields) for p in replica().local_all("patient")]
    found = sorted(((p, f) for p, f in every if not f.get("entered_in_error")
                    and (not query or matches(query, f.get("name"), personnummer=f.get("personnummer")))),
                   key=lambda pair: (pair[1].get("name") or "", pair[0].id))
    shown = found[:SHOWN_LIMIT]
    return page("laptop_caseload.html", shown=[p for p, _ in shown], query=query,
                groups=caseload_groups([f for _, f in shown]), total=len(found), limit=SHOWN_LIMIT)
