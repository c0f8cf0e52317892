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
#: The fields the list is searched and ordered by, read from every patient of the laptop.
LISTED = ("name", "personnummer", "entered_in_error")


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
    """The patients of this laptop by municipality and SÄBO unit; ``?q=`` searches name or personnummer.

    Only the listed fields of every patient are read to search and order (a
    municipality's thousands); only the patients shown are read whole.
    """
    query = request.args.get("q", "").strip()
    with snapshot():
        every = replica().local_fields("patient", LISTED).values()
        found = sorted((f for f in every if not f.get("entered_in_error")
                        and (not query or matches(query, f.get("name"), personnummer=f.get("personnummer")))),
                       key=lambda f: (f.get("name") or "", f["id"]))
        shown = replica().local_in("patient", [f["id"] for f in found[:SHOWN_LIMIT]])
    return page("laptop_caseload.html", shown=shown, query=query,
                groups=caseload_groups([p.fields for p in shown]), total=len(found), limit=SHOWN_LIMIT)
