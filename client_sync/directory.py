"""The merge's look-ups on the laptop: the staff directory, the municipalities and the replica.

The laptop checks a change's references offline against what the last
handshake said (staff, the region's municipalities) and what the replica shows
(the server's records with the outbox on top), so a doctor hears at once that
``--doctor "Anna Berg"`` names nobody; the server decides again when it arrives.
"""

import json

from schema.references import Directory

__all__ = ["ReplicaDirectory"]


class ReplicaDirectory(Directory):
    """What this laptop knows, as the merge asks it."""

    def __init__(self, replica):
        self.replica = replica

    def municipalities(self):
        # None before a handshake with a server that sends the list: the server decides alone.
        return self.replica.setting("municipalities")

    def person(self, user_id):
        row = self.replica.conn.execute("SELECT entry FROM staff WHERE id = ?", (user_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record(self, record_type, record_id):
        if not isinstance(record_id, str):
            return None
        found = self.replica.local(record_type, record_id)
        return found.fields if found is not None else None
