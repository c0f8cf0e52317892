"""Admin acts that are not sync merges: correcting a patient's personnummer.

A personnummer is fixed at creation and no pushed change may alter it
(``immutable_field``). When it was wrong, an admin corrects it here: the old
value goes to the record's history, the new one is written by the admin, the
record reaches every device through the feed, and the act is audited.
"""

import datetime as dt
import uuid

from schema.clock import HybridClock
from schema.errors import InvalidRecord
from schema.identity import normalize_personnummer
from schema.state import competitor

from . import audit
from .errors import NotFound, RoleForbidden
from .push import flag_duplicates

__all__ = ["correct_personnummer", "ADMIN_DEVICE"]

#: The device id written on changes made by server-side admin commands.
ADMIN_DEVICE = "server-admin"


def correct_personnummer(store, patient_id, personnummer, reason, admin_id):
    """Correct a patient's personnummer as admin ``admin_id``; return the new patient state."""
    admin = store.get_user(admin_id)
    if admin is None or admin["role"] != "admin":
        raise RoleForbidden("only an admin may correct a personnummer: pass an admin's user id with --by")
    if not (reason or "").strip():
        raise InvalidRecord("say why the personnummer is corrected (--reason)", details={"reason": ["required"]})
    new = normalize_personnummer(personnummer)
    with store.transaction():
        stored = store.get_record("patient", patient_id)
        if stored is None:
            raise NotFound(f"no patient {patient_id}")
        state = stored.state
        old = state["fields"]["personnummer"]
        if old["value"] == new:
            return state
        clock = HybridClock(store.clock() or "0000000000000000-000000")
        version = str(uuid.uuid4())
        state["history"].append({"field": "personnummer", **competitor(old)})
        state["fields"]["personnummer"] = {"value": new, "version": version, "hlc": str(clock.now()),
                                           "device_id": ADMIN_DEVICE, "by": admin_id, "parents": [old["version"]]}
        state["rev"] += 1
        state["changes"] = sorted([*state["changes"], version])
        store.save_clock(str(clock.last))
        store.put_record(state, version)
        store.audit([audit.admin("correct_personnummer", {
            "reason": reason.strip(), "change_id": version, "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }, patient_id=patient_id, user=admin)])
        flag_duplicates(store, state)
    return store.get_record("patient", patient_id).state
