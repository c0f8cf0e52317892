"""Marshmallow field types shared by the record schemas, and change validation.

The fields deserialise to JSON-native values (strings, numbers, booleans), so
a validated change can be stored and shipped as it is: validation checks and
normalises, it never turns a timestamp into an object the store cannot hold.
"""

import datetime as dt
import uuid

from marshmallow import RAISE, Schema, ValidationError, fields

from .errors import InvalidRecord
from .identity import normalize_personnummer

__all__ = [
    "RecordSchema",
    "Text",
    "IsoDateTime",
    "IsoDate",
    "RecordRef",
    "StrictBool",
    "StrictInt",
    "Number",
    "Personnummer",
    "load_fields",
    "check_envelope",
    "is_uuid",
    "require_uuid",
    "CLINICAL_FUTURE_LIMIT",
    "MAX_VERSION_CHARS",
    "MAX_COMPETING",
]

CLINICAL_FUTURE_LIMIT = dt.timedelta(hours=24)
TEXT_LIMIT = 20_000
#: A version is a change id (the push schema bounds those to 100 characters).
MAX_VERSION_CHARS = 100
#: Most competing versions one resolution may name, and most conflicts one change may resolve:
#: far above what concurrent edits of one field make, far below what could bloat a record.
MAX_COMPETING = 64
#: Most entries of a change's base: one per field the device had (a round of 300
#: residents has about a thousand nested fields).
MAX_BASE_ENTRIES = 5_000


class RecordSchema(Schema):
    """Base of every record schema: unknown fields are an error, not ignored."""

    class Meta:
        unknown = RAISE

    id = fields.String(load_only=False)
    entered_in_error = fields.Boolean(allow_none=True)
    entered_in_error_reason = fields.String(allow_none=True)


class Text(fields.String):
    """Free text with an upper bound, so one record cannot fill a laptop's disk."""

    def __init__(self, *, limit=TEXT_LIMIT, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.limit = limit

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.limit:
            raise ValidationError(f"is {len(text)} characters long; the limit is {self.limit}")
        return text


class StrictBool(fields.Field):
    """true or false, not 'yes' or 1: a clinical flag must be meant."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class Number(fields.Field):
    """A JSON number within bounds (temperatures have decimals); not a string, not true."""

    types = (int, float)
    kind = "a number"

    def __init__(self, *, minimum=None, maximum=None, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, self.types):
            raise ValidationError(f"must be {self.kind}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ValidationError(f"{value} is not possible here: expected {self.minimum} to {self.maximum}")
        return value


class StrictInt(Number):
    """A whole number given as a JSON number (not a string, not 1.5, not true)."""

    types = (int,)
    kind = "a whole number"



class IsoDateTime(fields.Field):
    """An ISO 8601 time with its UTC offset, kept as the string it was given."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a time like 2026-11-25T14:30:00+01:00")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{value!r} is not a time like 2026-11-25T14:30:00+01:00") from None
        if parsed.tzinfo is None:
            raise ValidationError(f"{value!r} has no UTC offset: add one, e.g. +01:00")
        return value


class IsoDate(fields.Field):
    """A calendar date YYYY-MM-DD, kept as a string."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{value!r} is not a date like 2026-11-25") from None
        if len(value) != 10:
            raise ValidationError(f"{value!r} is not a date like 2026-11-25")
        return value


class RecordRef(fields.Field):
    """The id of another record or user (a UUID, or an id the server issued)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise ValidationError("must be the id of a record (a UUID)")
        return value


class Personnummer(fields.Field):
    """A Swedish personnummer or samordningsnummer, normalised to 12 digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a personnummer like 19121212-1212")
        try:
            return normalize_personnummer(value)
        except InvalidRecord as exc:
            raise ValidationError(exc.message) from None


def is_uuid(value):
    """True when value is a UUID string (record ids are made where records are created)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def require_uuid(value, name):
    """Raise :class:`InvalidRecord` unless ``value`` is a UUID string (ids are made where records are)."""
    if not is_uuid(value):
        raise InvalidRecord(f"{name} must be a UUID made where the record was created, not {str(value)[:60]!r}",
                            details={name: ["not a UUID"]})


def check_envelope(rtype, change):
    """Check what a change says besides its fields: ``base`` and ``resolves``.

    ``base`` is what the device saw: known fields of the record type mapped to a
    version string (null: the field was absent), or (for a field whose conflict it
    resolves) a short list of them; ``resolves`` is a short list of conflict ids. Both become a write's
    parents, kept in the record for good, so anything else would poison every
    later merge of the record: it is refused here, for this change alone.
    Raises :class:`InvalidRecord`.
    """
    base, resolves = change.get("base"), change.get("resolves")
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise InvalidRecord("base must be a JSON object of field names to the versions the device saw",
                            details={"base": ["not an object"]})
    if len(base) > MAX_BASE_ENTRIES:
        raise InvalidRecord(f"base names {len(base)} fields; a record has at most {MAX_BASE_ENTRIES}",
                            details={"base": ["too many entries"]})
    problems = {}
    for path, seen in base.items():
        if not _known_path(rtype, path):
            problems[f"base.{path[:100]}"] = [f"not a field of a {rtype.name}"]
        elif not _versions(seen):
            problems[f"base.{path}"] = [
                f"must be a version string or a list of at most {MAX_COMPETING} of them"]
        if len(problems) >= 10:
            break
    if resolves is not None and not (
            isinstance(resolves, list) and len(resolves) <= MAX_COMPETING
            and all(_version(r) for r in resolves)):
        problems["resolves"] = [f"must be a list of at most {MAX_COMPETING} conflict ids"]
    if problems:
        summary = "; ".join(f"{k}: {v[0]}" for k, v in sorted(problems.items()))
        raise InvalidRecord(f"invalid change: {summary}", details=problems)


def _known_path(rtype, path):
    if not isinstance(path, str):
        return False
    declared = rtype.validator.load_fields
    head, sep, rest = path.partition(".")
    if not sep:
        return head in declared
    key, _, sub = rest.partition(".")
    return head in rtype.nested and 0 < len(key) <= 64 and 0 < len(sub) <= 64 and "." not in sub


def _version(value):
    return isinstance(value, str) and 0 < len(value) <= MAX_VERSION_CHARS


def _versions(seen):
    if seen is None:  # the field was absent when the device looked
        return True
    if isinstance(seen, list):
        return 0 < len(seen) <= MAX_COMPETING and all(_version(v) for v in seen)
    return _version(seen)


def load_fields(schema, values, *, creating):
    """Validate a change's field values against a record schema.

    A new record must carry every required field; an edit may carry any subset.
    Returns the normalised values; raises :class:`InvalidRecord` with a message
    per field (unknown fields included) otherwise.
    """
    if not isinstance(values, dict):
        raise InvalidRecord("fields must be a JSON object of field names to values")
    # The schema's fields do the checking; calling them for the fields a change
    # carries, not Schema.load over every declared field, is what a push of
    # thousands of records can afford (measured: about four times faster).
    declared, loaded, errors = schema.load_fields, {}, {}
    for name, value in values.items():
        field = declared.get(name)
        if field is None:
            errors[name] = [f"'{name}' is not a field of this record type"]
            continue
        try:
            loaded[name] = field.deserialize(value, name, values)
        except ValidationError as exc:
            errors.update(_flatten_messages({name: exc.messages}))
    if creating:
        errors.update({name: [f"'{name}' is required when the record is created"]
                       for name, field in declared.items() if field.required and name not in values})
    if errors:
        messages = [m for v in errors.values() for m in v]
        unknown = any("is not a field of this record type" in m for m in messages)
        missing = all("is required when the record is created" in m for m in messages)
        code = "unknown_field" if unknown else "missing_field" if missing else None
        summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items()))
        raise InvalidRecord(f"invalid record: {summary}", details=errors, code=code)
    return loaded


def _flatten_messages(messages, prefix=""):
    flat = {}
    for key, value in messages.items():
        # marshmallow reports errors inside a Dict field's values under "value": the
        # path a person needs is items.<patient>.<field>
        name = prefix.rstrip(".") if key == "value" and prefix else f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten_messages(value, prefix=f"{name}." if name else ""))
        else:
            flat[name] = [_person_message(name, str(m)) for m in value]
    return flat


def _person_message(name, message):
    """marshmallow's stock messages, in the words the rest of hemsync uses."""
    if message == "Unknown field.":
        return f"'{name}' is not a field of this record type"
    return message
