"""visit_request -> ServiceRequest (what the nurse asked for) and Task (where it stands);
admission (direktinskrivning) -> ServiceRequest for the ward.

The request's own status is the Task's ``businessStatus`` word for word, and its
``status`` the nearest FHIR task status; the ServiceRequest says only whether
the request is open, done or revoked.
"""

from .elements import SNOMED, concept, keep_unmapped, meta, practitioner, reference

__all__ = ["to_fhir", "admission_to_fhir", "REQUEST_STATUS", "TASK_STATUS", "PRIORITY"]

HOME_VISIT = ("439708006", "Home visit")
#: visit_request status -> (ServiceRequest.status, Task.status)
REQUEST_STATUS = {
    "requested": ("active", "requested"), "triaged": ("active", "received"), "assigned": ("active", "ready"),
    "accepted": ("active", "accepted"), "en_route": ("active", "in-progress"), "on_site": ("active", "in-progress"),
    "completed": ("completed", "completed"), "cancelled": ("revoked", "cancelled"),
}
TASK_STATUS = {status: task for status, (_, task) in REQUEST_STATUS.items()}
PRIORITY = {"acute": "stat", "urgent": "urgent", "planned": "routine"}
#: admission status -> ServiceRequest.status
ADMISSION_STATUS = {"proposed": "draft", "accepted": "active", "declined": "revoked", "arrived": "completed"}
MAPPED = frozenset({"patient_id", "reason", "urgency", "observation_id", "requested_by", "received_at",
                    "assigned_doctor_id", "status"})
ADMISSION_MAPPED = frozenset({"patient_id", "visit_id", "reason", "status"})


def to_fhir(record, state):
    """The ServiceRequest and the Task of a visit request (both with the request's id)."""
    error = record.get("entered_in_error")
    status = record.get("status") or "requested"
    request_status, task_status = REQUEST_STATUS[status]
    service = {"resourceType": "ServiceRequest", "id": record["id"], "meta": meta(state),
               "status": "entered-in-error" if error else request_status, "intent": "order",
               "priority": PRIORITY[record["urgency"]],
               "code": concept("Läkarbesök i hemmet", SNOMED, *HOME_VISIT),
               "subject": reference("Patient", record["patient_id"])}
    if record.get("reason"):
        service["reasonCode"] = [{"text": record["reason"]}]
    if record.get("received_at"):
        service["authoredOn"] = record["received_at"]
    if record.get("requested_by"):
        service["requester"] = practitioner(record["requested_by"])
    if record.get("assigned_doctor_id"):
        service["performer"] = [practitioner(record["assigned_doctor_id"])]
    if record.get("observation_id"):
        service["supportingInfo"] = [reference("Observation", record["observation_id"])]
    task = {"resourceType": "Task", "id": record["id"], "meta": meta(state),
            "status": "entered-in-error" if error else task_status, "businessStatus": {"text": status},
            "intent": "order", "priority": PRIORITY[record["urgency"]],
            "focus": reference("ServiceRequest", record["id"]), "for": reference("Patient", record["patient_id"])}
    if record.get("received_at"):
        task["authoredOn"] = record["received_at"]
    if record.get("requested_by"):
        task["requester"] = practitioner(record["requested_by"])
    if record.get("assigned_doctor_id"):
        task["owner"] = practitioner(record["assigned_doctor_id"])
    return [keep_unmapped(service, "visit_request", record, MAPPED, state), task]


def admission_to_fhir(record, state):
    """The ServiceRequest of a direct admission: asked of the ward, with its outcome as the status."""
    service = {"resourceType": "ServiceRequest", "id": record["id"], "meta": meta(state),
               "status": "entered-in-error" if record.get("entered_in_error") else
               ADMISSION_STATUS[record.get("status") or "proposed"],
               "intent": "order", "code": {"text": "Direktinskrivning"},
               "subject": reference("Patient", record["patient_id"])}
    if record.get("reason"):
        service["reasonCode"] = [{"text": record["reason"]}]
    if record.get("visit_id"):
        service["encounter"] = reference("Encounter", record["visit_id"])
    # The exact status (proposed and accepted are both still open) stays in the record-field extension.
    return [keep_unmapped(service, "admission", record, ADMISSION_MAPPED - {"status"}, state)]
