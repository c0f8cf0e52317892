"""A test region whose follow-up figures are known before they are computed.

Every record is written through the merge at the moment its event happened
(its HLC is that moment), so a patient's move, a death and every status step
have the times the story below gives them. Two municipalities, Halmstad and
Laholm; doctors ``doc-a`` and ``doc-b``; every patient carries a personnummer
generated for test data (``make_test_personnummer``), never a real person's.

The story, in Swedish local time (CET from 25 October 2026, CEST before):

- P1 own home, Halmstad, named doc-a, aged 80. P2, P3, P4, P5 live at SÄBO in
  Halmstad: P2 named doc-a, P3 none, P4 doc-b (dies 20 Nov), P5 doc-b.
  P6 lives at home in Laholm and moves to Halmstad on 15 Nov at 12:00.
  P7 lives at home in Laholm. P8 and P9 turn 75 on 20 Nov 2026.
- Acute requests on site: R1 (P1, 3 Nov, 45 min), R3 (P5, received 31 Oct 23:30,
  on site 1 Nov 00:10: 40 min, in November though it is 31 Oct in UTC),
  R4 (P6 in Laholm, 10 Nov, 30 min), R5 (P6 in Halmstad, 20 Nov, 60 min);
  R2 (P2, 31 Oct 22:30 → 23:50) is October's; R8 (P1, 30 Nov 23:30 → 1 Dec
  00:20) is December's; R7 (P3) was cancelled. Urgent R6 (P1, 5 Nov, 240 min).
  In October: R10 (P2, on site 1 Oct 00:30 CEST, which is 30 Sep in UTC: 30 min)
  and the DST night R9 (P1 urgent: received 02:30 CEST, on site 02:30 CET on
  25 Oct: 60 minutes, not 0).
- Visits: V1 P1 a 3 Nov stays_home; V2 P5 b 1 Nov 00:15 stays_home; V3 P2 a
  12 Nov direct_admission; V4 P4 b 20 Nov died; V5 P1 a 8 Nov stays_home but
  entered in error; V6 P6 a 20 Nov emergency_department; V7 P3 b 14 Nov no
  outcome; V8 P2 a 16 Nov not signed; V9 P6 b 10 Nov (Laholm) stays_home; all
  home visits and signed unless said. Round items V10 P1 b 10 Sep, V11 P1 a 1 Aug,
  V12 P5 a 25 Nov; a phone call V13 P3 b 20 Nov; V14 P3 b 30 Nov 2025 (outside
  the twelve months).
- Stays: S1 P1 28 Oct → 2 Nov 10:00, readmitted by S2 on 2 Dec (day 30);
  S3 P2 12 → 14 Nov, next stay S4 on 15 Dec (day 31: no readmission); S5 P5
  discharged 30 Nov 23:30, next stay S6 planned on 5 Dec; S7 P3 discharged 1 Dec 00:30 (30 Nov in UTC: December's);
  S8 P7 (Laholm) discharged 10 Nov, readmitted by S9 on 20 Nov.
- Admissions: A1 P2 arrived 12 Nov; A2 P1 only proposed; A3 P3 arrived 1 Dec 00:10.
- Reviews and conversations: review MR1 P1 done 10 Nov, MR2 P2 planned 12 Nov,
  MR3 P6 done 14 Nov (still Laholm), MR4 P5 done 31 Oct; breakpoint P4 done
  5 Nov; SIP P1 done 30 Nov; enrollment P3 done 31 Oct, P5 done 1 Nov.
- P8 and P9 (Halmstad, at home since January 2025, five active medications each)
  turn 75 on 20 Nov; P8's medication review is done that very day, P9 has none.
- P10, palliative, at SÄBO in Halmstad from 1 Nov without a named doctor or a
  breakpoint conversation, dies on 22 Nov (round item V15).
"""

import datetime as dt
import uuid

from schema.change import make_change
from schema.clock import Hlc
from schema.followup.calendar import ZONE
from schema.identity import make_test_personnummer
from schema.merge import SYSTEM, Actor, apply_change

HALMSTAD, LAHOLM = "Halmstad", "Laholm"
DOC_A, DOC_B = "doc-a", "doc-b"


def at(when):
    """A Swedish local time ``YYYY-MM-DD HH:MM`` (or an aware datetime) as an aware UTC datetime."""
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when).replace(tzinfo=ZONE)
    return when.astimezone(dt.timezone.utc)


class Region:
    """Records written through the merge, each change at the moment of its event."""

    def __init__(self):
        self.states = {}
        self.ids = {}

    def write(self, name, record_type, fields, when, by=DOC_A):
        """Create or change the record called ``name`` at ``when`` (local ``YYYY-MM-DD HH:MM``)."""
        moment = at(when)
        record_id = self.ids.setdefault(name, str(uuid.uuid5(uuid.NAMESPACE_URL, f"followup-region/{name}")))
        state = self.states.get(record_id)
        change = make_change(record_type, record_id, fields, state=state, change_id=str(uuid.uuid4()),
                             hlc=str(Hlc(int(moment.timestamp() * 1000), 0)), device_id=f"dev-{by}")
        self.states[record_id] = apply_change(state, change, Actor(by, SYSTEM.role), moment).state
        return record_id

    def patient(self, name, born, municipality, when="2026-09-01 08:00", **fields):
        return self.write(name, "patient", {"personnummer": make_test_personnummer(born, 100 + len(self.ids)),
                                            "name": f"Test {name}", "municipality": municipality,
                                            "access_notes": "TESTDATA: invented person", **fields}, when)

    def request(self, name, patient, urgency, received, on_site=None, cancelled=None):
        self.write(name, "visit_request", {"patient_id": self.ids[patient], "reason": "test", "urgency": urgency},
                   received, by="nurse-1")
        if on_site:
            self.write(name, "visit_request", {"status": "on_site"}, on_site)
        if cancelled:
            self.write(name, "visit_request", {"status": "cancelled", "cancel_reason": "bättre"}, cancelled,
                       by="nurse-1")

    def visit(self, name, patient, doctor, when, kind="home_visit", outcome=None, signed=True, **more):
        moment = at(when).isoformat()
        fields = {"patient_id": self.ids[patient], "doctor_id": doctor, "kind": kind, "started_at": moment,
                  **({"outcome": outcome} if outcome else {}), **more}
        if signed:
            fields.update(signed_at=moment, signed_by=doctor)
        self.write(name, "visit", fields, when, by=doctor)

    def stay(self, name, patient, admitted, discharged=None, planned=False):
        fields = {"patient_id": self.ids[patient], "hospital": "Hallands sjukhus", "ward": "Medicin",
                  "admitted_at": at(admitted).isoformat(), "planned": planned, "source": "manual"}
        self.write(name, "hospital_stay", fields, admitted, by="nurse-1")
        if discharged:
            self.write(name, "hospital_stay", {"discharged_at": at(discharged).isoformat()}, discharged,
                       by="nurse-1")

    def admission(self, name, patient, proposed, arrived=None):
        self.write(name, "admission", {"patient_id": self.ids[patient], "hospital": "Hallands sjukhus",
                                       "ward": "Medicin", "reason": "test"}, proposed)
        if arrived:
            self.write(name, "admission", {"status": "arrived"}, arrived)

    def done(self, name, record_type, patient, date, status="done", **fields):
        self.write(name, record_type, {"patient_id": self.ids[patient], "date": date, "status": status, **fields},
                   f"{date} 12:00")

    def medications(self, patient, count, when="2026-09-01 09:00"):
        for i in range(count):
            self.write(f"{patient}-med-{i}", "medication", {"patient_id": self.ids[patient], "drug": f"Drug {i}",
                                                            "status": "active"}, when)


def build():
    """The region of the module's story; returns it (``.states`` by id, ``.ids`` by name)."""
    r = Region()
    r.patient("P1", dt.date(1946, 3, 1), HALMSTAD, care_setting="own_home", named_doctor_id=DOC_A)
    r.patient("P2", dt.date(1936, 5, 2), HALMSTAD, care_setting="sabo", named_doctor_id=DOC_A,
              moved_in_at="2026-06-01")
    r.patient("P3", dt.date(1938, 7, 3), HALMSTAD, care_setting="sabo", moved_in_at="2026-10-20")
    r.patient("P4", dt.date(1930, 1, 4), HALMSTAD, care_setting="sabo", named_doctor_id=DOC_B, palliative=True)
    r.patient("P5", dt.date(1940, 2, 5), HALMSTAD, care_setting="sabo", named_doctor_id=DOC_B)
    r.patient("P6", dt.date(1942, 4, 6), LAHOLM, care_setting="own_home")
    r.write("P6", "patient", {"municipality": HALMSTAD}, "2026-11-15 12:00", by="nurse-1")
    r.patient("P7", dt.date(1944, 6, 7), LAHOLM, care_setting="own_home")
    r.patient("P8", dt.date(1951, 11, 20), HALMSTAD, care_setting="own_home", enrolled_at="2025-01-10")
    r.patient("P9", dt.date(1951, 11, 20), HALMSTAD, care_setting="own_home", enrolled_at="2025-01-10")
    r.patient("P10", dt.date(1929, 8, 10), HALMSTAD, when="2026-11-01 08:00", care_setting="sabo", palliative=True)

    r.request("R1", "P1", "acute", "2026-11-03 10:00", "2026-11-03 10:45")
    r.request("R2", "P2", "acute", "2026-10-31 22:30", "2026-10-31 23:50")
    r.request("R3", "P5", "acute", "2026-10-31 23:30", "2026-11-01 00:10")
    r.request("R4", "P6", "acute", "2026-11-10 09:00", "2026-11-10 09:30")
    r.request("R5", "P6", "acute", "2026-11-20 14:00", "2026-11-20 15:00")
    r.request("R6", "P1", "urgent", "2026-11-05 09:00", "2026-11-05 13:00")
    r.request("R7", "P3", "acute", "2026-11-06 09:00", cancelled="2026-11-06 09:20")
    r.request("R8", "P1", "acute", "2026-11-30 23:30", "2026-12-01 00:20")
    # 02:30 comes twice on 25 October 2026: first in summer time (fold 0), an hour later in winter time.
    r.request("R9", "P1", "urgent", dt.datetime(2026, 10, 25, 2, 30, tzinfo=ZONE),
              dt.datetime(2026, 10, 25, 2, 30, tzinfo=ZONE, fold=1))
    r.request("R10", "P2", "acute", "2026-10-01 00:00", "2026-10-01 00:30")

    r.visit("V1", "P1", DOC_A, "2026-11-03 10:45", outcome="stays_home")
    r.visit("V2", "P5", DOC_B, "2026-11-01 00:15", outcome="stays_home")
    r.visit("V3", "P2", DOC_A, "2026-11-12 11:00", outcome="direct_admission")
    r.visit("V4", "P4", DOC_B, "2026-11-20 08:00", outcome="died")
    r.visit("V5", "P1", DOC_A, "2026-11-08 09:00", outcome="stays_home", entered_in_error=True,
            entered_in_error_reason="fel patient")
    r.visit("V6", "P6", DOC_A, "2026-11-20 15:00", outcome="emergency_department")
    r.visit("V7", "P3", DOC_B, "2026-11-14 10:00")
    r.visit("V8", "P2", DOC_A, "2026-11-16 10:00", outcome="stays_home", signed=False)
    r.visit("V9", "P6", DOC_B, "2026-11-10 09:30", outcome="stays_home")
    r.visit("V10", "P1", DOC_B, "2026-09-10 10:00", kind="round_item")
    r.visit("V11", "P1", DOC_A, "2026-08-01 10:00", kind="round_item")
    r.visit("V12", "P5", DOC_A, "2026-11-25 10:00", kind="round_item")
    r.visit("V13", "P3", DOC_B, "2026-11-20 10:00", kind="phone")
    r.visit("V14", "P3", DOC_B, "2025-11-30 10:00", kind="round_item")
    r.visit("V15", "P10", DOC_A, "2026-11-22 10:00", kind="round_item", outcome="died")

    r.stay("S1", "P1", "2026-10-28 10:00", "2026-11-02 10:00")
    r.stay("S2", "P1", "2026-12-02 09:00", "2026-12-06 12:00")
    r.stay("S3", "P2", "2026-11-12 14:00", "2026-11-14 11:00")
    r.stay("S4", "P2", "2026-12-15 09:00")
    r.stay("S5", "P5", "2026-11-26 10:00", "2026-11-30 23:30")
    r.stay("S6", "P5", "2026-12-05 08:00", planned=True)
    r.stay("S7", "P3", "2026-11-25 10:00", "2026-12-01 00:30")
    r.stay("S8", "P7", "2026-11-05 10:00", "2026-11-10 10:00")
    r.stay("S9", "P7", "2026-11-20 10:00", "2026-11-24 10:00")

    r.admission("A1", "P2", "2026-11-12 11:30", "2026-11-12 14:00")
    r.admission("A2", "P1", "2026-11-18 11:30")
    r.admission("A3", "P3", "2026-11-30 23:00", "2026-12-01 00:10")

    r.done("MR1", "medication_review", "P1", "2026-11-10")
    r.done("MR2", "medication_review", "P2", "2026-11-12", status="planned")
    r.done("MR3", "medication_review", "P6", "2026-11-14")
    r.done("MR4", "medication_review", "P5", "2026-10-31")
    r.done("CP1", "care_plan", "P4", "2026-11-05", kind="breakpoint_conversation")
    r.done("CP2", "care_plan", "P1", "2026-11-30", kind="sip")
    r.done("CP3", "care_plan", "P3", "2026-10-31", kind="enrollment_conversation")
    r.done("CP4", "care_plan", "P5", "2026-11-01", kind="enrollment_conversation")

    r.medications("P8", 5)
    r.medications("P9", 5)
    r.done("MR8", "medication_review", "P8", "2026-11-20")
    return r
