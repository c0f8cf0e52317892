"""The registry of record types: one module per type, each declaring ``RECORD``.

Built-in types are registered exactly as an extension would be, with
:func:`register`; :func:`get` is how everything else finds a type.
"""

from ..errors import UnknownRecordType

__all__ = ["REGISTRY", "get", "register", "names"]

REGISTRY = {}


def register(rtype):
    """Add a record type to the registry (built-in and extension types alike)."""
    REGISTRY[rtype.name] = rtype
    return rtype


def get(name):
    """The record type called ``name``; raise UnknownRecordType if there is none."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownRecordType(
            f"{name!r} is not a record type; known types: {', '.join(sorted(REGISTRY))}",
            details={"record_type": [f"unknown: {name!r}"]},
        ) from None


def names():
    """The names of all registered record types, sorted."""
    return sorted(REGISTRY)


from . import (  # noqa: E402  (the modules register themselves with the registry above)
    admission,
    amendment,
    care_plan,
    conflict,
    medication,
    medication_review,
    observation,
    patient,
    round,
    visit,
    visit_request,
    warning,
)
