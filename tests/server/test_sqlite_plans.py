"""The SQLite store's hot look-ups use their indexes: a statement that scans grows with the region."""

import sqlite3

from server.store import SqliteStore
from server.store.sqlite import SELECT_PATIENTS_BY_PERSONNUMMER


def test_finding_patients_by_personnummer_reads_the_personnummer_index_not_every_patient(tmp_path):
    SqliteStore(tmp_path / "hemsync.db").close()
    conn = sqlite3.connect(tmp_path / "hemsync.db")
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + SELECT_PATIENTS_BY_PERSONNUMMER, ("191212121212",))]
    conn.close()
    assert any("USING INDEX idx_records_personnummer" in step for step in plan), plan
