"""The FHIR bulk-export bench, small: it exports every record, and its memory does not grow with the export."""

from proof import fhir_export


def test_the_export_bench_exports_every_record_of_every_patient(tmp_path):
    figures = fhir_export.run(150, tmp_path)
    assert figures["records"] == 3 * 150  # each patient, its visit and its vitals
    assert figures["output"]["Patient"] == 150 and figures["output"]["Composition"] == 150
    assert figures["records_per_s"] > 0 and figures["peak_python_mib"] > 0


def test_the_export_streams_its_peak_memory_stays_flat_as_the_patients_grow_fivefold(tmp_path):
    small = fhir_export.run(300, tmp_path / "small")
    large = fhir_export.run(1500, tmp_path / "large")
    assert large["ndjson_mib"] > 4 * small["ndjson_mib"]
    # One page of records is held at a time (plus the scope's patient ids, 1500 short strings).
    assert large["peak_python_mib"] < 1.5 * small["peak_python_mib"] + 1.0, (small, large)
