"""The errors of the shared contract, each with a stable code.

The code is what a laptop and a script can rely on; the message is for the person
in front of the screen and says what to do. The HTTP layer (``server.errors``)
maps these to statuses in one place; a push answers per change with the code.

    HemsyncError
    ├── InvalidRecord            invalid_value / unknown_field / missing_field
    ├── UnknownRecordType        unknown_record_type
    ├── Forbidden                forbidden / forbidden_field
    ├── OutOfScope               out_of_scope
    ├── SealedRecord             sealed_record
    ├── AppendOnly               append_only
    ├── ImmutableField           immutable_field
    ├── InvalidTransition        invalid_transition
    ├── AlreadyAccepted          already_accepted
    ├── OpenConflict             open_conflict
    ├── StaleSignature           stale_signature
    ├── UnknownConflict          unknown_conflict
    ├── DependsOnRejected        depends_on_rejected
    ├── UnknownReference         unknown_reference / unknown_municipality
    ├── ChangeIdTaken            change_id_taken
    └── MergeFailed              merge_failed / record_too_large
"""

__all__ = [
    "HemsyncError",
    "InvalidRecord",
    "UnknownRecordType",
    "Forbidden",
    "OutOfScope",
    "SealedRecord",
    "AppendOnly",
    "ImmutableField",
    "InvalidTransition",
    "AlreadyAccepted",
    "OpenConflict",
    "StaleSignature",
    "UnknownConflict",
    "DependsOnRejected",
    "UnknownReference",
    "ChangeIdTaken",
    "MergeFailed",
]


class HemsyncError(Exception):
    """Base of every hemsync error: a stable code, a message, details."""

    code = "error"

    def __init__(self, message, *, details=None, code=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code

    def to_dict(self):
        """The error as the one JSON shape used everywhere."""
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRecord(HemsyncError):
    """A record or change failed validation; ``details`` maps field to messages."""

    code = "invalid_value"


class UnknownRecordType(HemsyncError):
    """The record type is not one hemsync knows."""

    code = "unknown_record_type"


class Forbidden(HemsyncError):
    """The user's role may not make this change."""

    code = "forbidden"


class OutOfScope(HemsyncError):
    """The record is outside what this device may see or change."""

    code = "out_of_scope"


class SealedRecord(HemsyncError):
    """The visit is signed; only an amendment or an entered-in-error mark may follow."""

    code = "sealed_record"


class AppendOnly(HemsyncError):
    """The record type is never edited; write a new record instead."""

    code = "append_only"


class ImmutableField(HemsyncError):
    """The field is fixed at creation."""

    code = "immutable_field"


class InvalidTransition(HemsyncError):
    """The status change is not a step of the record's state machine."""

    code = "invalid_transition"


class AlreadyAccepted(HemsyncError):
    """Another doctor's acceptance of the request reached the server first."""

    code = "already_accepted"


class OpenConflict(HemsyncError):
    """The record has an open conflict that must be resolved first."""

    code = "open_conflict"


class StaleSignature(HemsyncError):
    """The visit changed after the signer last synced; review and sign again."""

    code = "stale_signature"


class UnknownConflict(HemsyncError):
    """The change names a conflict that does not exist on this field."""

    code = "unknown_conflict"


class DependsOnRejected(HemsyncError):
    """An earlier change this one builds on was rejected."""

    code = "depends_on_rejected"


class UnknownReference(InvalidRecord):
    """A field names a person, record or municipality that is not there (or not of the right kind)."""

    code = "unknown_reference"


class ChangeIdTaken(HemsyncError):
    """Another device already used this change id: the change is not that device's to repeat."""

    code = "change_id_taken"


class MergeFailed(HemsyncError):
    """The server could not merge this change (or it would grow the record past its limit).

    The change is rejected alone and kept in quarantine for an admin; the rest of
    the batch, and every other device's sync, goes on.
    """

    code = "merge_failed"
