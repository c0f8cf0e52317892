"""DOMAIN.md "Safety rules added after review" on the laptop, offline (issue 9, item 8).

The laptop runs the same merge as the server with its own directory (the
staff list of the last handshake and its replica), so it refuses early and
shows the right figures before any sync; the server decides again.
"""

import datetime as dt
import json
import uuid

from client_sync.replica import Replica
from client_sync.sync import sync

from .conftest import PERSONNUMMER
from .test_cli import login_as

NORMAL_VITALS = {"resp_rate": 16, "temperature": 37.0, "systolic_bp": 120, "pulse": 70, "consciousness": "A"}


def test_an_observation_written_offline_is_scored_on_its_patients_spo2_scale_before_any_sync(doctor, server):
    replica, _ = doctor
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson",
                                          "municipality": "Umeå", "spo2_scale": 2})
    measured_at = dt.datetime.now(dt.timezone.utc).isoformat()
    scored = []
    for spo2, oxygen in ((89, False), (98, True)):
        written = replica.write("observation", str(uuid.uuid4()), {
            "patient_id": patient_id, "measured_at": measured_at, "spo2": spo2, "supplemental_o2": oxygen,
            "spo2_scale": 1, **NORMAL_VITALS})
        scored.append((written.fields["spo2_scale"], written.fields["news2"]))
    # RCP's chart, scale 2: 88-92 % on air scores 0; >= 97 % on oxygen scores 3, and oxygen 2 more.
    assert scored == [(2, 0), (2, 5)]
    assert server.calls == []  # nothing of this went online


def test_assigning_a_request_to_a_name_is_refused_offline_pointing_at_the_staff_directory(nurse, hemsync, server,
                                                                                        tmp_path):
    replica, client = nurse  # taken before hemsync: this client was made before `online` reroutes new ones
    patient_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson",
                                          "municipality": "Umeå"})
    replica.write("visit_request", request_id, {"patient_id": patient_id, "reason": "feber", "urgency": "acute"})
    sync(replica, client=client)
    login_as(hemsync, server, "u-disp-dan")
    hemsync("sync")
    calls = len(server.calls)
    refused = hemsync("assign", request_id, "--doctor", "Anna Berg", ok=False)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "'Anna Berg'" in refused.output and "staff directory (`hemsync staff`)" in refused.output
    assert len(server.calls) == calls  # refused on the laptop, offline
    with Replica(tmp_path / "laptop.db") as laptop:
        assert laptop.unsent_count() == 0
    assigned = json.loads(hemsync("assign", request_id, "--doctor", "u-dr-anna", "--json").stdout)
    assert assigned["assigned_doctor_id"] == "u-dr-anna"
