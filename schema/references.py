"""References between records, people and municipalities, checked when a change merges.

A field that names something else declares it on its :class:`schema.recordtype.FieldSpec`
(``ref=``): a person of a role (``assigned_doctor_id`` names a doctor), a record of
the same patient (an amendment's ``visit_id``), or a municipality of the region's
list. The merge checks what a change sets against a :class:`Directory`, passed
by the writer in ``options["directory"]``: the server's answers from its store,
the laptop's from its staff directory and its replica, offline. The server
decides; the laptop only refuses early what the server would refuse.

Municipalities are matched ignoring case and stored as the region spells them;
an unknown one is refused with the nearest known names.
"""

import abc
import dataclasses
import difflib

from .errors import UnknownReference
from .validation import is_uuid

__all__ = ["Ref", "Directory", "check_references", "canonical_municipality"]

@dataclasses.dataclass(frozen=True)
class Ref:
    """What a field refers to: ``kind`` is ``person``, ``record`` or ``municipality``.

    ``roles``: the roles a referenced person may have; ``record_type``: the type of
    a referenced record, which must belong to the same patient as the referring one.
    """

    kind: str
    roles: tuple = ()
    record_type: str | None = None

    @classmethod
    def person(cls, *roles):
        """A reference to a user of one of ``roles``."""
        return cls("person", roles=roles)

    @classmethod
    def record(cls, record_type):
        """A reference to a record of ``record_type`` of the same patient."""
        return cls("record", record_type=record_type)

    @classmethod
    def municipality(cls):
        """A municipality of the region's list."""
        return cls("municipality")


class Directory(abc.ABC):
    """What the merge may look up about the world outside the record it merges."""

    @abc.abstractmethod
    def municipalities(self):
        """The region's municipalities as it spells them; None when this side does not know them."""

    @abc.abstractmethod
    def person(self, user_id):
        """The staff entry (``id``, ``name``, ``role``, ...) of a user, or None."""

    @abc.abstractmethod
    def record(self, record_type, record_id):
        """The record as a person sees it (:func:`schema.merge.view`), or None."""


def canonical_municipality(name, known):
    """The region's spelling of ``name`` (case ignored); raise UnknownReference with the nearest names."""
    by_folded = {m.casefold(): m for m in known}
    found = by_folded.get(str(name).strip().casefold())
    if found is not None:
        return found
    nearest = [by_folded[m] for m in difflib.get_close_matches(str(name).casefold(), by_folded, n=3, cutoff=0.5)]
    hint = f"did you mean {' or '.join(nearest)}?" if nearest else f"known: {', '.join(sorted(known)) or 'none yet'}"
    raise UnknownReference(
        f"{name!r} is not a municipality of this region: {hint} "
        "(an admin adds one with `hemsync-server add-municipality NAME`)",
        details={"municipality": [f"unknown: {str(name)[:100]}"], "nearest": nearest},
        code="unknown_municipality",
    )


def check_references(ctx):
    """Check (and, for municipalities, normalise) every reference a change sets.

    Runs in the merge for every writer but the server itself, when the writer
    passed a directory. Raises :class:`UnknownReference`.
    """
    directory = ctx.options.get("directory")
    if directory is None:
        return
    for path in sorted(ctx.values):
        spec = ctx.rtype.spec(path)
        value = ctx.values[path]
        if spec.ref is None or value is None:
            continue
        if spec.ref.kind == "municipality":
            known = directory.municipalities()
            if known is not None:
                ctx.values[path] = canonical_municipality(value, known)
        elif spec.ref.kind == "person":
            _check_person(directory, path, value, spec.ref.roles)
        else:
            _check_record(ctx, directory, path, value, spec.ref.record_type)


def _check_person(directory, path, user_id, roles):
    person = directory.person(user_id)
    if person is None or (roles and person.get("role") not in roles):
        what = " or ".join(roles) if roles else "user"
        found = f"a {person['role']}" if person else "nobody in the staff directory"
        raise UnknownReference(
            f"{path} must be the id of a {what}, but {str(user_id)[:60]!r} is {found}: "
            "pick the person by id from the staff directory (`hemsync staff`)",
            details={path: [f"not a {what}"]},
        )


def _check_record(ctx, directory, path, record_id, record_type):
    found = directory.record(record_type, record_id) if is_uuid(record_id) else None
    patient = ctx.values.get("patient_id", ctx.current("patient_id"))
    if found is None or found.get("patient_id") != patient:
        reason = "of another patient" if found is not None else "that this device has or the server knows"
        raise UnknownReference(
            f"{path} must name a {record_type} of the same patient, but {str(record_id)[:60]!r} is no "
            f"{record_type} {reason}",
            details={path: [f"no {record_type} of this patient"]},
        )
