"""What a record type declares: its schema, its fields' rules, its guards.

A record type is data. Each module of :mod:`schema.records` builds one
:class:`RecordType` and the registry collects them; the merge, the role check,
the server and the laptop read everything they need from here, so adding a
record type or changing a rule is a change in one file.
"""

import dataclasses
import fnmatch
import functools

from .rules import LastWriterWins, Rule
from .state import value_of

__all__ = ["FieldSpec", "RecordType", "flatten", "unflatten", "NESTED_SEP", "INDEX_COLUMNS"]

NESTED_SEP = "."
#: The columns the server finds records by, besides type and id (``patient_id`` comes from
#: :meth:`RecordType.patient_of`; a type's ``index`` says which of its fields fill the others).
INDEX_COLUMNS = ("patient_id", "municipality", "personnummer", "status", "assignee")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """How one field (or a pattern of nested fields) merges and who sets it.

    ``server`` fields are set by the server only; ``stamped`` fields are set from
    the authenticated user; ``clinical`` values fall under "nothing lost";
    ``clinical_time`` values may not lie more than 24 h in the future; ``fixed``
    fields place the record (its patient, a round's municipality) and are set
    once, at creation; ``ref`` says what the field names (:class:`schema.references.Ref`).
    """

    rule: Rule = dataclasses.field(default_factory=LastWriterWins)
    severity: str | None = None
    clinical: bool = False
    server: bool = False
    stamped: bool = False
    clinical_time: bool = False
    fixed: bool = False
    ref: object = None


@dataclasses.dataclass
class RecordType:
    """A record type: schema, per-field rules, and hooks the merge calls.

    ``guards`` run before a change merges and raise to reject it;
    ``after_merge`` hooks see the merged state and may raise record-level
    conflicts (``discontinued beats``, ``deactivation keeps it active``);
    ``on_create`` stamps fields from the actor when a record is made;
    ``views`` add derived fields to what a person sees (a status history);
    ``keeps_bases`` stores what each change had seen, for record-level rules;
    ``creators`` and ``editors`` are the roles of DOMAIN.md's role table, and
    ``editable`` limits a role to some fields (patterns allowed) when it edits,
    ``creatable`` when it creates. The ``patient_field`` places the record and is
    fixed at creation, like every field declared ``fixed``.

    What the server and the laptop need to know of a type is declared here too:
    ``index`` maps each of :data:`INDEX_COLUMNS` the type fills to the fields
    that fill it (the first one set wins); ``changes_scope`` says a write to it
    can change who sees what (a new patient, a move, an assignment);
    ``after_store`` hooks run on the server after a state of the type is stored,
    as ``hook(writes, state, before)`` with the write path
    (:class:`server.writes.WriteApplier`), the stored state and the state before
    (None for a new record), and return the ids of the conflicts they raised.
    """

    name: str
    schema: type
    fields: dict
    severity: str = "low"
    nested: tuple = ()
    append_only: bool = False
    status_field: str | None = None
    guards: tuple = ()
    after_merge: tuple = ()
    on_create: dict = dataclasses.field(default_factory=dict)
    views: tuple = ()
    keeps_bases: bool = False
    patient_field: str | None = "patient_id"
    creators: frozenset = frozenset()
    editors: frozenset = frozenset()
    editable: dict = dataclasses.field(default_factory=dict)
    creatable: dict = dataclasses.field(default_factory=dict)
    index: dict = dataclasses.field(default_factory=dict)
    changes_scope: bool = False
    after_store: tuple = ()

    def __post_init__(self):
        self._schema = self.schema()
        self._cache = {}
        unknown = set(self.index) - set(INDEX_COLUMNS[1:])
        if unknown:
            raise ValueError(f"record type {self.name}: no index column {sorted(unknown)}; "
                             f"the columns are {', '.join(INDEX_COLUMNS[1:])}")
        self.index = {column: (fields,) if isinstance(fields, str) else tuple(fields)
                      for column, fields in self.index.items()}
        if self.patient_field not in (None, "id"):
            self.fields = {**self.fields, self.patient_field: dataclasses.replace(
                self.fields.get(self.patient_field, FieldSpec()), fixed=True)}

    @property
    def validator(self):
        """The marshmallow schema instance (built once; schemas are stateless)."""
        return self._schema

    def spec(self, path):
        """The FieldSpec of a field, or of a nested path such as ``items.<id>.note``."""
        found = self._cache.get(path)
        if found is None:
            found = self.fields.get(path)
            if found is None:
                found = next(
                    (s for p, s in self.fields.items() if "*" in p and fnmatch.fnmatchcase(path, p)),
                    FieldSpec(),
                )
            self._cache[path] = found
        return found

    def severity_of(self, path):
        """Conflict severity for a field: its own, else the record type's."""
        return self.spec(path).severity or self.severity

    def patient_of(self, state):
        """The patient a record (its merge state) belongs to; None for a type placed otherwise (a round)."""
        return self._patient(state["id"], functools.partial(value_of, state))

    def _patient(self, record_id, value):
        if self.patient_field == "id":
            return record_id
        return value(self.patient_field) if self.patient_field else None

    def claimed_patient(self, change):
        """The patient a change names by its own values (a new record's; it may not exist), or None."""
        if self.patient_field == "id":
            return change.get("record_id")
        value = (change.get("fields") or {}).get(self.patient_field) if self.patient_field else None
        return value if isinstance(value, str) else None

    def patients_shown(self, state):
        """The patients whose data a record shows, sorted: its patient, or a round's residents."""
        patient = self.patient_of(state)
        if patient:
            return [patient]
        return sorted({path.split(NESTED_SEP)[1] for path in state["fields"]
                       if path.split(NESTED_SEP)[0] in self.nested})

    def index_values(self, state):
        """The values of :data:`INDEX_COLUMNS` for a merge state, as the server stores them."""
        return self.index_of(state["id"], functools.partial(value_of, state))

    def index_of(self, record_id, value):
        """The values of :data:`INDEX_COLUMNS` for a record whose field values ``value(path)`` gives (None: unset).

        The laptop takes them from a pulled record's wire form, whose ``fields`` are
        the values, without building its merge state (:meth:`index_values` does it
        from the merge state).
        """
        def first(names):
            for name in names:
                found = value(name)
                if found is not None:
                    return found
            return None

        return {"patient_id": self._patient(record_id, value),
                **{column: first(self.index.get(column, ())) for column in INDEX_COLUMNS[1:]}}

    def choices(self, name):
        """The values people pick from for a field (urgency, RETTS colour, a status), from its schema."""
        validators = self._schema.fields[name].validators
        return next(tuple(v.choices) for v in validators if hasattr(v, "choices"))

    @property
    def machine(self):
        """The status field's state machine, if the type has one."""
        return self.fields[self.status_field].rule if self.status_field else None

    @property
    def server_fields(self):
        """Fields only the server sets."""
        return frozenset(name for name, s in self.fields.items() if s.server)

    @property
    def stamped_fields(self):
        """Fields stamped from the authenticated user, never taken from a client."""
        return frozenset(name for name, s in self.fields.items() if s.stamped)

    @property
    def fixed_fields(self):
        """Fields that place the record: set at creation, never changed by a sync."""
        return frozenset(name for name, s in self.fields.items() if s.fixed)

    @property
    def clinical_times(self):
        """Fields holding clinical times (bounded to 24 h in the future)."""
        return frozenset(name for name, s in self.fields.items() if s.clinical_time)


def flatten(values, nested):
    """Turn nested objects (round ``items``) into dotted paths merged one by one."""
    flat = {}
    for name, value in values.items():
        if name in nested and isinstance(value, dict):
            for key, item in value.items():
                for sub, v in (item or {}).items():
                    flat[NESTED_SEP.join((name, key, sub))] = v
        else:
            flat[name] = value
    return flat


def unflatten(flat, nested):
    """The inverse of :func:`flatten`: dotted paths back into nested objects."""
    values = {}
    for path, value in flat.items():
        head, sep, rest = path.partition(NESTED_SEP)
        if sep and head in nested:
            key, _, sub = rest.partition(NESTED_SEP)
            values.setdefault(head, {}).setdefault(key, {})[sub] = value
        else:
            values[path] = value
    return values
