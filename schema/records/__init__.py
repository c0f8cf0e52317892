"""The registry of record types: one module per type, each declaring ``RECORD``.

Built-in types are registered exactly as an extension would be, with
:func:`register`; :func:`get` is how everything else finds a type. Adding a
record type is adding one module here.
"""

import importlib
import pkgutil

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


def _register_builtin_types():
    """Import every module of this package: each registers its record type."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_builtin_types()
