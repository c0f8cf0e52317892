from datetime import date
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema import identity
from schema.errors import InvalidRecord
from schema.identity import (
    TEST_PERSONNUMMER,
    age_on,
    birth_date,
    is_samordningsnummer,
    make_test_personnummer,
    normalize_personnummer,
    validate_hsa_id,
)

TODAY = date(2026, 6, 15)


def test_all_names_exactly_the_public_api():
    public = {
        name
        for name, value in vars(identity).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and getattr(value, "__module__", identity.__name__) == identity.__name__
    }
    assert sorted(identity.__all__) == sorted(public)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("191212121212", "191212121212"),
        ("19121212-1212", "191212121212"),
        ("1212121212", "201212121212"),
        ("121212-1212", "201212121212"),
        ("121212+1212", "191212121212"),
        ("  19121212-1212\n", "191212121212"),
    ],
)
def test_every_accepted_form_normalizes_to_twelve_digits(text, expected):
    assert normalize_personnummer(text, today=TODAY) == expected


def test_plus_sign_applies_from_the_year_the_person_turns_one_hundred():
    # Born 30 December 1926: 99 on TODAY, but 2026 is the year of the hundredth birthday.
    assert normalize_personnummer("261230+9811", today=TODAY) == "192612309811"


def test_dash_means_born_within_the_last_ninety_nine_years():
    assert normalize_personnummer("270101-9818", today=TODAY) == "192701019818"
    assert normalize_personnummer("260101-9819", today=TODAY) == "202601019819"


def test_twelve_digits_do_not_depend_on_today():
    assert normalize_personnummer("191212121212") == "191212121212"


def test_samordningsnummer_day_plus_sixty_is_valid():
    assert normalize_personnummer("19121261-1238") == "191212611238"
    assert is_samordningsnummer("191212611238")
    assert birth_date("191212611238") == date(1912, 12, 1)


def test_samordningsnummer_day_ninety_one_is_the_thirty_first():
    assert birth_date(normalize_personnummer("191201911235")) == date(1912, 1, 31)


def test_a_personnummer_is_not_a_samordningsnummer():
    assert not is_samordningsnummer("191212121212")


def test_leap_day_is_a_real_date_only_in_a_leap_year():
    assert normalize_personnummer("191202291231") == "191202291231"
    assert normalize_personnummer("200002291235") == "200002291235"
    with pytest.raises(InvalidRecord, match="is not a real date"):
        normalize_personnummer("190002291235")


@pytest.mark.parametrize(
    "text",
    [
        "191202301238",  # 30 February
        "191212001232",  # day 00
        "191213001231",  # month 13
        "191212601239",  # samordningsnummer day 60 is day 00
        "191212921231",  # samordningsnummer day 92 is day 32
        "191202901235",  # samordningsnummer of 30 February
    ],
)
def test_a_date_that_does_not_exist_is_rejected(text):
    with pytest.raises(InvalidRecord) as raised:
        normalize_personnummer(text)
    message = f"personnummer {text} is not a real date: check the birth date"
    assert raised.value.to_dict() == {
        "code": "invalid_value",
        "message": message,
        "details": {"personnummer": [message]},
    }


def test_wrong_check_digit_is_rejected_with_the_expected_digit():
    with pytest.raises(InvalidRecord) as raised:
        normalize_personnummer("19121212-1213")
    message = (
        "personnummer 19121212-1213 has a wrong check digit (expected 2): check the last digit"
    )
    assert (raised.value.message, raised.value.details) == (message, {"personnummer": [message]})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "19121212-12A2",  # a letter
        "ABCDEF-1212",
        "1912121212121",  # 13 digits
        "12121212121",  # 11 digits
        "121212-121",  # 9 digits
        "19121212+1212",  # + on a 12-digit number
        "19121212--1212",
        "1912-1212-1212",
        "121212 1212",
        "١٢١٢١٢-١٢١٢",  # Arabic-Indic digits
        191212121212,  # not text
        None,
    ],
)
def test_a_malformed_personnummer_is_rejected_with_the_accepted_forms(text):
    with pytest.raises(InvalidRecord, match=r"must be 12 digits \(YYYYMMDDNNNC\) or 10 digits"):
        normalize_personnummer(text, today=TODAY)


def test_age_counts_completed_years_and_turns_on_the_birthday():
    assert age_on("195006151236", date(2025, 6, 14)) == 74
    assert age_on("195006151236", date(2025, 6, 15)) == 75


def test_age_of_a_samordningsnummer_uses_the_real_birth_date():
    assert age_on("195006751233", date(2025, 6, 15)) == 75


def test_someone_born_on_a_leap_day_turns_older_on_the_first_of_march():
    assert age_on("192002291231", date(1921, 2, 28)) == 0
    assert age_on("192002291231", date(1921, 3, 1)) == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SE2321000131-E000000000001", "SE2321000131-E000000000001"),
        (" se2321000131-e000000000001 ", "SE2321000131-E000000000001"),
        ("SE2321000131-" + "A" * 31, "SE2321000131-" + "A" * 31),
    ],
)
def test_a_valid_hsa_id_is_returned_uppercased(text, expected):
    assert validate_hsa_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2321000131-E000000000001",  # no SE
        "SE232100013-E000000000001",  # 9 digits
        "SE2321000131E000000000001",  # no hyphen
        "SE2321000131-",  # nothing after the hyphen
        "SE2321000131-" + "A" * 32,
        "SE2321000131-E00_1",
        "SE2321000131-Eﬀ",  # uppercases to ASCII "FF" but is not ASCII
        None,
    ],
)
def test_an_invalid_hsa_id_is_rejected_on_the_hsa_id_field(text):
    with pytest.raises(InvalidRecord) as raised:
        validate_hsa_id(text)
    assert list(raised.value.details) == ["hsa_id"]
    assert "SE2321000131-E000000000001" in raised.value.message


def test_test_personnummer_are_valid_and_normalized_and_include_tolvan():
    assert "191212121212" in TEST_PERSONNUMMER
    assert [normalize_personnummer(p) for p in TEST_PERSONNUMMER] == list(TEST_PERSONNUMMER)
    assert any(is_samordningsnummer(p) for p in TEST_PERSONNUMMER)


def test_make_test_personnummer_refuses_a_serial_beyond_three_digits():
    with pytest.raises(ValueError):
        make_test_personnummer(date(1950, 1, 1), 1000)


@given(st.dates(), st.integers(0, 999))
def test_made_test_personnummer_are_always_accepted(birth, serial):
    pnr = make_test_personnummer(birth, serial)
    assert normalize_personnummer(pnr) == pnr
    assert birth_date(pnr) == birth


@given(st.dates(), st.integers(0, 999), st.integers(1, 9))
def test_changing_the_last_digit_always_fails(birth, serial, shift):
    pnr = make_test_personnummer(birth, serial)
    wrong = pnr[:-1] + str((int(pnr[-1]) + shift) % 10)
    with pytest.raises(InvalidRecord, match=rf"wrong check digit \(expected {pnr[-1]}\)"):
        normalize_personnummer(wrong)


@given(st.dates(date(TODAY.year - 199, 1, 1), TODAY), st.integers(0, 999))
def test_the_ten_digit_form_with_its_separator_names_the_same_person(birth, serial):
    pnr = make_test_personnummer(birth, serial)
    separator = "+" if TODAY.year - birth.year >= 100 else "-"
    assert normalize_personnummer(pnr[2:8] + separator + pnr[8:], today=TODAY) == pnr
