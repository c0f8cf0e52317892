"""Which records reach which device (DOMAIN.md "Scope"), and which it may write.

- A doctor's or nurse's device: every record of the patients of the user's
  municipalities, and the rounds of those municipalities; a doctor's also every
  record of the patients of requests belonging to her (assigned or accepted,
  and not cancelled).
- A dispatcher's device: every open request of the region and, of those
  requests' patients, the patient record, warnings and observations.
- An integration client (a journal system reading FHIR): every record of the
  patients of its municipalities, and the rounds of those municipalities.
- An admin reads no clinical records.
- The staff directory (no tokens) reaches every device, in the handshake.

A pushed change is checked against the scope at its base: a device may edit a
record that is in its scope now or that it still holds (it was handed out and no
purge marker followed), so edits made offline before the record left its scope
are accepted; it may create records only inside its scope.
"""

from schema.errors import OutOfScope
from schema.merge import SYSTEM
from schema.records.visit_request import MACHINE

from .auth import CLIENT_ROLE
from .bodies import STAFF_FIELDS
from .store import ScopeKeys, index_columns

__all__ = ["LITE_TYPES", "OPEN_REQUEST_STATUSES", "keys_for", "check_existing", "check_placed", "check_new",
           "staff"]

#: What a dispatcher sees of the patient of an open request.
LITE_TYPES = ("observation", "patient", "warning")
OPEN_REQUEST_STATUSES = frozenset(MACHINE.rank) - frozenset(MACHINE.final)
#: A doctor keeps the patients of her requests until a request is cancelled: a
#: completed visit may still need documenting and signing on her laptop.
DROPS_ASSIGNMENT = frozenset({"cancelled"})


def keys_for(store, user):
    """The :class:`ScopeKeys` of what this user's devices may see now."""
    role = user["role"]
    if role in ("doctor", "nurse", CLIENT_ROLE):
        full = set(store.patients_in(user["municipalities"]))
        if role == "doctor":
            full.update(store.request_patients(user["id"], DROPS_ASSIGNMENT))
        return ScopeKeys(full=frozenset(full), municipalities=frozenset(user["municipalities"]),
                         lite_types=LITE_TYPES)
    if role == "dispatcher":
        open_requests = store.requests_with_status(OPEN_REQUEST_STATUSES)
        return ScopeKeys(lite=frozenset(p for _, p in open_requests if p),
                         requests=frozenset(r for r, _ in open_requests), lite_types=LITE_TYPES)
    return ScopeKeys(lite_types=LITE_TYPES)


def check_existing(store, device, user, keys, stored):
    """Raise OutOfScope unless the device may change this stored record."""
    if user["role"] == "admin":
        # The role table limits an admin to error marks; she reads nothing, so scope does not apply.
        return
    if user["role"] == SYSTEM.role:
        # The server itself (the escalation job) writes its own fields on any record.
        return
    if keys.covers(stored.type, stored.id, stored.patient_id, stored.municipality):
        return
    if store.holds(device["id"], stored.type, stored.id):
        return
    raise OutOfScope(
        f"{stored.type} {stored.id} is outside what this device may see: it was never synced to it, "
        "or it left its scope and was purged",
        details={"record_id": [stored.id]},
    )


def check_placed(keys, user, state, stored=None):
    """Raise OutOfScope unless the merged state lies where the user may write.

    A new record must lie in the user's scope. An edit was checked at its base
    (:func:`check_existing`); when it moves the record (a patient to another
    municipality) the place it moves to must be one the user may create in too,
    so only someone whose scope holds both moves a patient.
    """
    if user["role"] in ("admin", SYSTEM.role):
        return
    columns = index_columns(state)
    if stored is not None and (columns["patient_id"], columns["municipality"]) == (stored.patient_id,
                                                                                   stored.municipality):
        return
    check_new(keys, user, state, columns)


def check_new(keys, user, state, columns=None):
    """Raise OutOfScope unless the user may create this record (its merged state) where it lies.

    ``columns`` are the state's index columns when the caller has them already.
    """
    columns = columns or index_columns(state)
    patient_id, municipality = columns["patient_id"], columns["municipality"]
    if state["type"] == "patient" or patient_id is None:
        # A new patient or round lies in its municipality.
        allowed = municipality in keys.municipalities
        where = f"municipality {municipality!r}"
    else:
        allowed = keys.covers(state["type"], state["id"], patient_id, municipality)
        where = f"patient {patient_id}"
    if not allowed:
        raise OutOfScope(
            f"{where} is outside what this device may see: a {user['role']} of "
            f"{', '.join(user['municipalities']) or 'no municipality'} may not create records there",
            details={"patient_id" if patient_id and state["type"] != "patient" else "municipality": [where]},
        )


def staff_entry(user):
    """A user as devices see them (:data:`server.bodies.STAFF_FIELDS`): never a token."""
    return {k: user[k] for k in STAFF_FIELDS}


def staff(store):
    """The staff directory every device receives: names, roles, municipalities, HSA-ids; never tokens.

    Integration clients are no staff: no laptop offers them as a doctor or nurse.
    """
    return [staff_entry(user) for user in store.users() if user["role"] != CLIENT_ROLE]
