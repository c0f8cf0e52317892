"""The merge's look-ups on the server: staff, municipalities and records, from the store.

A :class:`schema.references.Directory` over the store, made once per batch of
writes; people and municipalities are read once per batch (they change through
admin commands, not through pushes), records as the write path reads them (a
push's batch reads each once and again after it writes it: a batch may create
the observation its next change names); a record's view is decoded once per
stored text (:meth:`server.store.StoredRecord.view`), as every observation of a
batch reads its patient.
"""

import functools

from schema.references import Directory

__all__ = ["StoreDirectory"]


class StoreDirectory(Directory):
    """What the server knows, as the merge asks it."""

    def __init__(self, store, read=None):
        self.store = store
        # How a record is read: a push's batch reads each record it names once (WriteApplier.look_up).
        self._read = read or store.get_record

    @functools.cached_property
    def _municipalities(self):
        return self.store.municipalities()

    def municipalities(self):
        return self._municipalities

    @functools.cached_property
    def _people(self):
        return {user["id"]: user for user in self.store.users()}

    def person(self, user_id):
        return self._people.get(user_id)

    def record(self, record_type, record_id):
        if not isinstance(record_id, str):
            return None
        stored = self._read(record_type, record_id)
        return stored.view() if stored is not None else None
