"""The SQLite store's hot look-ups use their indexes: a statement that scans grows with the region."""

import sqlite3

from server.store import SqliteStore
from server.store.sqlite import SELECT_FIRST_SEQ, SELECT_PATIENTS_BY_PERSONNUMMER


def test_finding_patients_by_personnummer_reads_the_personnummer_index_not_every_patient(tmp_path):
    SqliteStore(tmp_path / "hemsync.db").close()
    conn = sqlite3.connect(tmp_path / "hemsync.db")
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + SELECT_PATIENTS_BY_PERSONNUMMER, ("191212121212",))]
    conn.close()
    assert any("USING INDEX idx_records_personnummer" in step for step in plan), plan


def test_a_pull_page_finds_where_its_scope_starts_by_index_seeks_not_by_walking_the_feed(tmp_path):
    SqliteStore(tmp_path / "hemsync.db").close()
    conn = sqlite3.connect(tmp_path / "hemsync.db")
    params = {"full": '["p1", "p2"]', "lite": '["p3"]', "lite_types": '["patient"]', "municipalities": '["Halmstad"]',
              "requests": '["r1"]', "after": 0, "upto": 2 ** 62}
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + SELECT_FIRST_SEQ, params)]
    conn.close()
    seeks = [step for step in plan if "records" in step]
    assert len(seeks) == 4 and all(step.startswith("SEARCH records USING") for step in seeks), plan
    assert sum("idx_records_patient_id_seq (patient_id=? AND seq>?" in step for step in seeks) == 3, plan
