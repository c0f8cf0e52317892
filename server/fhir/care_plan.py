"""care_plan (SIP, breakpoint and enrollment conversations, care plans) and medication_review -> CarePlan."""

from .elements import keep_unmapped, meta, reference

__all__ = ["to_fhir", "review_to_fhir", "TITLES", "STATUS"]

TITLES = {"sip": "Samordnad individuell plan (SIP)", "breakpoint_conversation": "Brytpunktssamtal",
          "enrollment_conversation": "Inskrivningssamtal", "care_plan": "Vårdplan",
          "medication_review": "Läkemedelsgenomgång"}
#: planned: the conversation is still to be held (a draft); done: its plan is in force.
STATUS = {"planned": "draft", "done": "active"}
MAPPED = frozenset({"patient_id", "kind", "date", "content"})
REVIEW_MAPPED = frozenset({"patient_id", "date"})


def _plan(record, state, kind):
    plan = {"resourceType": "CarePlan", "id": record["id"], "meta": meta(state),
            "status": "entered-in-error" if record.get("entered_in_error") else
            STATUS.get(record.get("status"), "unknown"),
            "intent": "plan", "category": [{"text": TITLES[kind]}], "title": TITLES[kind],
            "subject": reference("Patient", record["patient_id"])}
    if record.get("date"):
        plan["created"] = record["date"]
    return plan


def to_fhir(record, state):
    """The CarePlan of a care plan or conversation, as a list of one resource."""
    plan = _plan(record, state, record["kind"])
    if record.get("content"):
        plan["description"] = record["content"]
    return [keep_unmapped(plan, "care_plan", record, MAPPED, state)]


def review_to_fhir(record, state):
    """The CarePlan of a medication review; findings and decisions make its description, kept exactly too."""
    plan = _plan(record, state, "medication_review")
    text = "\n\n".join(f"{title}: {record[f]}" for f, title in (("findings", "Fynd"), ("decisions", "Beslut"))
                       if record.get(f))
    if text:
        plan["description"] = text
    return [keep_unmapped(plan, "medication_review", record, REVIEW_MAPPED, state)]
