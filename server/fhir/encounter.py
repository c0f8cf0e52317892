"""visit -> Encounter (class HH, home health; VR for a phone consultation); a round's resident -> Encounter.

A round holds several residents, so it is never exported whole: each resident's
item is an Encounter of that resident alone (id ``<round id>.<the resident's id,
compact>``), carrying the round's date, doctor and the item's question, status
and note, and nothing of the other residents.
"""

from schema.recordtype import NESTED_SEP

from .elements import ACT_CODE, derived_id, keep_unmapped, meta, practitioner, reference

__all__ = ["to_fhir", "round_items_to_fhir", "round_item_part", "CLASSES"]

#: visit kind -> v3 ActCode encounter class
CLASSES = {"home_visit": ("HH", "home health"), "round_item": ("HH", "home health"), "phone": ("VR", "virtual")}
#: The note (assessment, plan, signature) is mapped too: the visit's Composition carries it.
MAPPED = frozenset({"patient_id", "request_id", "doctor_id", "kind", "started_at", "ended_at",
                    "assessment", "plan", "signed_at", "signed_by"})
ROUND_STATUS = {"open": "planned", "deferred": "cancelled", "done": "finished"}


def _encounter(resource_id, state, status, kind, patient_id):
    code, display = CLASSES[kind]
    return {"resourceType": "Encounter", "id": resource_id, "meta": meta(state), "status": status,
            "class": {"system": ACT_CODE, "code": code, "display": display},
            "subject": reference("Patient", patient_id)}


def _visit_status(record):
    if record.get("entered_in_error"):
        return "entered-in-error"
    if record.get("signed_at") or record.get("ended_at"):
        return "finished"
    return "in-progress" if record.get("started_at") else "planned"


def to_fhir(record, state):
    """The Encounter of a visit (the note it holds is a Composition: server.fhir.composition)."""
    encounter = _encounter(record["id"], state, _visit_status(record), record["kind"], record["patient_id"])
    if record.get("doctor_id"):
        encounter["participant"] = [{"individual": practitioner(record["doctor_id"])}]
    period = {k: record[f] for k, f in (("start", "started_at"), ("end", "ended_at")) if record.get(f)}
    if period:
        encounter["period"] = period
    if record.get("request_id"):
        encounter["basedOn"] = [reference("ServiceRequest", record["request_id"])]
    # outcome and place have no Encounter element of the same meaning: the record-field extension keeps them.
    return [keep_unmapped(encounter, "visit", record, MAPPED, state)]


def round_item_part(patient_id):
    """The id part of a resident's Encounter within a round."""
    return patient_id.replace("-", "")


def round_items_to_fhir(record, state, patient_ids):
    """One Encounter per resident of the round that is among ``patient_ids`` (the caller's scope)."""
    items = record.get("items") or {}
    resources = []
    for patient_id in sorted(set(items) & set(patient_ids)):
        item = items[patient_id] or {}
        status = "entered-in-error" if record.get("entered_in_error") else ROUND_STATUS.get(item.get("status"),
                                                                                            "planned")
        encounter = _encounter(derived_id(record["id"], round_item_part(patient_id)), state, status, "round_item",
                               patient_id)
        if record.get("doctor_id"):
            encounter["participant"] = [{"individual": practitioner(record["doctor_id"])}]
        if record.get("date"):
            encounter["period"] = {"start": record["date"]}
        if item.get("question"):
            encounter["reasonCode"] = [{"text": item["question"]}]
        resident = {"id": record["id"], **{k: v for k, v in record.items() if k not in ("id", "items")},
                    **{f"item_{k}": v for k, v in item.items()}}
        # Conflicts over another resident's item are that resident's: never shown here.
        own = {**state, "conflicts": [c for c in state.get("conflicts", ())
                                      if not c["field"].startswith("items" + NESTED_SEP)
                                      or c["field"].startswith(NESTED_SEP.join(("items", patient_id, "")))]}
        resources.append(keep_unmapped(encounter, "round", resident, {"doctor_id", "date", "item_question"}, own))
    return resources

