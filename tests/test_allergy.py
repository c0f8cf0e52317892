"""A drug matches an active allergy warning that names it (schema.allergy)."""

from hypothesis import given
from hypothesis import strategies as st

from schema import allergy


def allergy_warning(text, **fields):
    return {"kind": "allergy", "text": text, "severity": "high", "active": True, **fields}


def test_a_drug_named_in_an_active_allergy_matches_whatever_the_case_and_accents():
    warnings = [allergy_warning("PENICILLIN: andnöd"), allergy_warning("Plåster")]
    assert allergy.matching_allergies("Penicillin V 1 g", warnings) == warnings[:1]
    assert allergy.matching_allergies("plaster", warnings) == warnings[1:]


def test_an_inactive_allergy_another_kind_of_warning_or_one_entered_in_error_does_not_match():
    warnings = [allergy_warning("Penicillin", active=False), {"kind": "condition", "text": "Penicillin"},
                allergy_warning("Penicillin", entered_in_error=True)]
    assert allergy.matching_allergies("Penicillin V", warnings) == []


def test_doses_and_units_are_not_names():
    assert allergy.matching_allergies("Doxycyklin 100 mg", [allergy_warning("Morfin 100 mg")]) == []


@given(st.text(), st.lists(st.text()))
def test_any_drug_and_warning_texts_are_read_without_error(drug, texts):
    found = allergy.matching_allergies(drug, [allergy_warning(t) for t in texts])
    assert all(allergy.words(drug) & allergy.words(w["text"]) for w in found)
