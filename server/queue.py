"""Dispatch on the server: the queue, suggestions and the escalation feed, read from the store.

The rules (order, deadlines, risk flags, suggestions) are :mod:`schema.dispatch`'s,
the same functions the laptop's ``hemsync queue`` runs on its replica; this module
only gathers the records they need: every open request of the region, its
patient and that patient's observations (the dispatcher's scope, DOMAIN.md
"Scope"). What it shows is patient data, so every caller audits the patients
of what it hands out (:func:`server.audit.shown`).
"""

import dataclasses

from schema.dispatch import accepted_load, queue_entries, suggest_doctors

from .errors import NotFound
from .scope import OPEN_REQUEST_STATUSES
from .settings import dispatch_settings

__all__ = ["DispatchView", "open_view", "queue", "suggestions", "feed_entry"]


@dataclasses.dataclass(frozen=True)
class DispatchView:
    """The open requests, their patients and those patients' observations, as plain dicts by id."""

    requests: dict
    patients: dict
    observations: dict

    def municipality_of(self, request_id):
        """The municipality of a request's patient (None when the patient is unknown)."""
        patient = self.patients.get(self.requests[request_id]["patient_id"], {})
        return patient.get("municipality")


def open_view(store):
    """The :class:`DispatchView` of the region's open requests as stored now."""
    request_ids = [request_id for request_id, _ in store.requests_with_status(OPEN_REQUEST_STATUSES)]
    requests = _views(store.get_records("visit_request", request_ids))
    patient_ids = {r["patient_id"] for r in requests.values() if r.get("patient_id")}
    return DispatchView(
        requests=requests,
        patients=_views(store.get_records("patient", patient_ids)),
        observations=_views(store.records_of_patients("observation", patient_ids)),
    )


def queue(store, settings, now, municipality=None):
    """The open requests in dispatch order as JSON-ready dicts (``schema.dispatch`` decides the order).

    Each entry is :meth:`QueueEntry.to_dict` (with ``out_of_hours``: acute and
    received outside working hours, a matter for the on-call service) plus the
    patient's ``municipality``.
    """
    dispatch = open_view(store)
    entries = queue_entries(dispatch.requests, dispatch.patients, dispatch.observations, now,
                            dispatch_settings(settings), municipality=municipality)
    return [feed_entry(entry, dispatch) for entry in entries]


def feed_entry(entry, dispatch):
    """A queue entry as JSON, with the patient's municipality."""
    return {**entry.to_dict(), "municipality": dispatch.municipality_of(entry.request_id)}


def suggestions(store, request_id):
    """``(request, suggestions)``: doctors for an open request, best first; NotFound for others."""
    dispatch = open_view(store)
    request = dispatch.requests.get(request_id)
    if request is None:
        raise NotFound(f"no open visit request {request_id}: it is closed, or the id is wrong",
                       details={"request_id": [request_id]})
    patient = dispatch.patients.get(request["patient_id"], {})
    doctors = [user for user in store.users() if user["role"] == "doctor"]
    # Only open requests carry load (accepted, en route, on site): the open view has them all.
    return request, suggest_doctors(request, patient, doctors, accepted_load(dispatch.requests.values()))


def _views(stored_records):
    return {stored.id: stored.view() for stored in stored_records}
