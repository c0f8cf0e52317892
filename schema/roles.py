"""Who may write what: DOMAIN.md's role table, checked in one place.

Each record type declares its creators, editors and per-role editable fields
(``schema.records.<type>``); this module enforces them. The server checks every
pushed change; the laptop checks the same before a local write reaches its
outbox, so a nurse learns at once, offline, that she cannot sign a visit. Reading (scope) is the server's concern
(``server.scope``); state-machine steps are checked by each record type's
machine, which names the roles of every step.
"""

import fnmatch

from .errors import Forbidden

__all__ = ["ROLES", "INTEGRATION", "check_role", "check_change", "ERROR_MARK"]

ROLES = ("doctor", "nurse", "dispatcher", "admin")
#: An integration client (a journal system, the region's data platform), no person: it reads FHIR in its
#: municipalities and imports the hospitals' discharge notices (hospital stays); it never syncs.
INTEGRATION = "integration"

#: Fields anyone who may edit a record may set: marking it entered in error.
ERROR_MARK = frozenset({"entered_in_error", "entered_in_error_reason"})

def check_role(rtype, role, creating):
    """Raise :class:`Forbidden` unless ``role`` may create (or change) records of this type."""
    allowed = rtype.creators if creating else rtype.editors
    if role not in allowed:
        act = "create" if creating else "change"
        raise Forbidden(
            f"a {role} may not {act} {rtype.name} records",
            details={"record_type": [f"{act} needs one of: {', '.join(sorted(allowed)) or 'nobody'}"]},
        )


def check_change(ctx):
    """Raise :class:`Forbidden` unless the actor's role may change these fields."""
    name, role = ctx.rtype.name, ctx.actor.role
    check_role(ctx.rtype, role, ctx.creating)
    # A role's field limits hold at creation too: a nurse's new request cannot come
    # already assigned or overridden (it would move the patient into a doctor's scope).
    limits = (ctx.rtype.creatable if ctx.creating else ctx.rtype.editable).get(role)
    if limits is None:
        return
    refused = sorted(
        path for path in ctx.values
        if path not in ERROR_MARK and not any(fnmatch.fnmatchcase(path, p) for p in limits)
    )
    if refused:
        act = "set" if ctx.creating else "change"
        raise Forbidden(
            f"a {role} may not {act} {', '.join(refused)} of a {name}",
            details={path: [f"not {'settable' if ctx.creating else 'editable'} by a {role}"] for path in refused},
            code="forbidden_field",
        )
