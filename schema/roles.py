"""Who may write what: DOMAIN.md's role table, in one place.

The server enforces it on every pushed change; the laptop checks the same table
before a local write reaches its outbox, so a nurse learns at once, offline,
that she cannot sign a visit. Reading (scope) is the server's concern
(``server.scope``); state-machine steps are checked by each record type's
machine, which names the roles of every step.
"""

import fnmatch

from .errors import Forbidden

__all__ = ["ROLES", "CREATORS", "EDITORS", "EDITABLE_FIELDS", "check_role", "check_change", "ERROR_MARK"]

ROLES = ("doctor", "nurse", "dispatcher", "admin")

#: Fields anyone who may edit a record may set: marking it entered in error.
ERROR_MARK = frozenset({"entered_in_error", "entered_in_error_reason"})

CREATORS = {
    "patient": {"doctor", "nurse"},
    "warning": {"doctor", "nurse"},
    "observation": {"doctor", "nurse"},
    "visit_request": {"nurse"},
    "visit": {"doctor"},
    "amendment": {"doctor"},
    "round": {"doctor", "nurse"},
    "admission": {"doctor"},
    "medication": {"doctor"},
    "medication_review": {"doctor"},
    "care_plan": {"doctor", "nurse"},
}

EDITORS = {
    "patient": {"doctor", "nurse"},
    "warning": {"doctor", "nurse"},
    "observation": {"doctor", "nurse"},
    "visit_request": {"nurse", "dispatcher", "doctor"},
    "visit": {"doctor", "admin"},
    "amendment": {"doctor"},
    "round": {"doctor", "nurse"},
    "admission": {"doctor"},
    "medication": {"doctor"},
    "medication_review": {"doctor"},
    "care_plan": {"doctor", "nurse"},
}

#: Where a role may edit only some fields of a type (patterns allowed).
EDITABLE_FIELDS = {
    ("visit_request", "nurse"): {"reason", "callback_phone", "status", "cancel_reason"},
    ("visit_request", "dispatcher"): {
        "status", "assigned_doctor_id", "priority_override", "priority_override_reason", "cancel_reason",
    },
    ("visit_request", "doctor"): {"status"},
    ("round", "nurse"): {"items.*.question", "items.*.note"},
    ("visit", "admin"): set(),
}


def check_role(name, role, creating):
    """Raise :class:`Forbidden` unless ``role`` may create (or change) records of type ``name``."""
    allowed = CREATORS if creating else EDITORS
    if role not in allowed.get(name, ()):
        act = "create" if creating else "change"
        raise Forbidden(
            f"a {role} may not {act} {name} records",
            details={"record_type": [f"{act} needs one of: {', '.join(sorted(allowed.get(name, ())) or ['nobody'])}"]},
        )


def check_change(ctx):
    """Raise :class:`Forbidden` unless the actor's role may change these fields."""
    name, role = ctx.rtype.name, ctx.actor.role
    check_role(name, role, ctx.creating)
    if ctx.creating:
        return
    limits = EDITABLE_FIELDS.get((name, role))
    if limits is None:
        return
    refused = sorted(
        path for path in ctx.values
        if path not in ERROR_MARK and not any(fnmatch.fnmatchcase(path, p) for p in limits)
    )
    if refused:
        raise Forbidden(
            f"a {role} may not change {', '.join(refused)} of a {name}",
            details={path: [f"not editable by a {role}"] for path in refused},
            code="forbidden_field",
        )
