from dataclasses import FrozenInstanceError

import pytest

from schema import news2
from schema.errors import InvalidRecord
from schema.news2 import PARAMETERS, News2, score, score_fields

NORMAL = {
    "resp_rate": 16,
    "spo2": 97,
    "supplemental_o2": False,
    "temperature": 37.0,
    "systolic_bp": 120,
    "pulse": 70,
    "consciousness": "A",
}


def test_all_names_exactly_the_public_api():
    assert sorted(news2.__all__) == ["News2", "PARAMETERS", "score", "score_fields"]


def test_normal_vitals_score_zero_and_are_complete():
    assert score(NORMAL) == News2(
        total=0,
        partial=False,
        missing=(),
        parameter_scores={key: 0 for key in PARAMETERS},
        max_single=0,
        band="low",
    )


# Every band edge of the RCP chart, from both sides.
@pytest.mark.parametrize(
    "key, value, points",
    [
        ("resp_rate", 8, 3),
        ("resp_rate", 9, 1),
        ("resp_rate", 11, 1),
        ("resp_rate", 12, 0),
        ("resp_rate", 20, 0),
        ("resp_rate", 21, 2),
        ("resp_rate", 24, 2),
        ("resp_rate", 25, 3),
        ("spo2", 91, 3),
        ("spo2", 92, 2),
        ("spo2", 93, 2),
        ("spo2", 94, 1),
        ("spo2", 95, 1),
        ("spo2", 96, 0),
        ("supplemental_o2", False, 0),
        ("supplemental_o2", True, 2),
        ("temperature", 35.0, 3),
        ("temperature", 35.1, 1),
        ("temperature", 36.0, 1),
        ("temperature", 36.1, 0),
        ("temperature", 38.0, 0),
        ("temperature", 38.1, 1),
        ("temperature", 39.0, 1),
        ("temperature", 39.1, 2),
        ("systolic_bp", 90, 3),
        ("systolic_bp", 91, 2),
        ("systolic_bp", 100, 2),
        ("systolic_bp", 101, 1),
        ("systolic_bp", 110, 1),
        ("systolic_bp", 111, 0),
        ("systolic_bp", 219, 0),
        ("systolic_bp", 220, 3),
        ("pulse", 40, 3),
        ("pulse", 41, 1),
        ("pulse", 50, 1),
        ("pulse", 51, 0),
        ("pulse", 90, 0),
        ("pulse", 91, 1),
        ("pulse", 110, 1),
        ("pulse", 111, 2),
        ("pulse", 130, 2),
        ("pulse", 131, 3),
        ("consciousness", "A", 0),
        ("consciousness", "C", 3),
        ("consciousness", "V", 3),
        ("consciousness", "P", 3),
        ("consciousness", "U", 3),
    ],
)
def test_each_parameter_scores_its_chart_band_at_every_boundary(key, value, points):
    assert score({key: value}).parameter_scores == {key: points}


@pytest.mark.parametrize(
    "temperature, points",
    [(35.04, 3), (35.05, 1), (36.04, 1), (36.05, 0), (38.05, 1), (39.05, 2)],
)
def test_temperature_is_read_on_one_decimal_rounding_half_up(temperature, points):
    assert score({"temperature": temperature}).parameter_scores == {"temperature": points}


@pytest.mark.parametrize(
    "spo2, on_oxygen, points",
    [
        (83, False, 3),
        (83, True, 3),
        (84, False, 2),
        (85, True, 2),
        (86, False, 1),
        (87, True, 1),
        (88, False, 0),
        (88, True, 0),
        (92, False, 0),
        (92, True, 0),
        (93, False, 0),
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
        (100, True, 3),
        (97, False, 0),
        (100, False, 0),
    ],
)
def test_scale_two_scores_high_saturation_only_on_oxygen(spo2, on_oxygen, points):
    observation = {"spo2": spo2, "spo2_scale": 2, "supplemental_o2": on_oxygen}
    assert score(observation).parameter_scores == {
        "spo2": points,
        "supplemental_o2": 2 if on_oxygen else 0,
    }


def test_scale_one_scores_saturation_the_same_on_air_and_oxygen():
    assert score({"spo2": 97, "spo2_scale": 1, "supplemental_o2": True}).parameter_scores == {
        "spo2": 0,
        "supplemental_o2": 2,
    }


def test_an_absent_scale_is_scale_one_and_not_a_missing_parameter():
    result = score({**NORMAL, "spo2": 93})
    assert (result.parameter_scores["spo2"], result.partial) == (2, False)


def test_scale_two_with_oxygen_unknown_scores_as_on_air_so_the_partial_total_is_a_floor():
    result = score({"spo2": 97, "spo2_scale": 2})
    assert result.parameter_scores == {"spo2": 0}
    assert "supplemental_o2" in result.missing


def test_a_single_parameter_scoring_three_is_low_medium_and_medium_risk():
    result = score({**NORMAL, "consciousness": "V"})
    assert (result.total, result.max_single, result.band) == (3, 3, "low_medium")
    assert (result.medium_risk, result.emergency) == (True, False)


def test_a_single_three_in_a_total_of_five_is_medium_not_low_medium():
    result = score({**NORMAL, "consciousness": "V", "pulse": 115})
    assert (result.total, result.band, result.medium_risk) == (5, "medium", True)


@pytest.mark.parametrize(
    "changes, total, band, medium_risk, emergency",
    [
        ({"pulse": 115, "resp_rate": 22}, 4, "low", False, False),
        ({"pulse": 115, "resp_rate": 22, "temperature": 38.5}, 5, "medium", True, False),
        ({"pulse": 115, "resp_rate": 22, "temperature": 38.5, "systolic_bp": 105}, 6, "medium",
         True, False),
        ({"pulse": 115, "resp_rate": 22, "temperature": 38.5, "systolic_bp": 105, "spo2": 95}, 7,
         "high", False, True),
    ],
)
def test_totals_four_to_seven_band_low_medium_and_high(
    changes, total, band, medium_risk, emergency
):
    result = score({**NORMAL, **changes})
    assert (result.total, result.band, result.medium_risk, result.emergency) == (
        total, band, medium_risk, emergency,
    )


def test_a_high_total_with_a_single_three_is_an_emergency_and_flags_medium_risk_too():
    result = score({**NORMAL, "consciousness": "U", "pulse": 131, "spo2": 95})
    assert (result.total, result.band) == (7, "high")
    assert (result.emergency, result.medium_risk) == (True, True)


def test_partial_vitals_score_what_is_present_and_name_what_is_missing():
    result = score({"pulse": 115, "spo2": 93, "temperature": None})
    assert result == News2(
        total=4,
        partial=True,
        missing=("resp_rate", "supplemental_o2", "temperature", "systolic_bp", "consciousness"),
        parameter_scores={"spo2": 2, "pulse": 2},
        max_single=2,
        band="low",
    )


def test_an_empty_observation_is_partial_with_every_parameter_missing():
    assert score({}) == News2(0, True, PARAMETERS, {}, 0, "low")


def test_score_fields_are_the_total_and_whether_it_is_partial():
    assert score_fields(NORMAL) == {"news2": 0, "news2_partial": False}
    assert score_fields({"pulse": 131}) == {"news2": 3, "news2_partial": True}


@pytest.mark.parametrize(
    "key, value",
    [
        ("pulse", "fast"),
        ("pulse", True),
        ("temperature", float("nan")),
        ("supplemental_o2", "yes"),
        ("consciousness", "X"),
        ("consciousness", "alert"),
        ("spo2_scale", 3),
        ("spo2_scale", True),
    ],
)
def test_a_value_off_the_chart_is_rejected_on_its_field(key, value):
    with pytest.raises(InvalidRecord) as raised:
        score({**NORMAL, key: value})
    assert list(raised.value.details) == [key]


def test_a_score_is_frozen():
    with pytest.raises(FrozenInstanceError):
        score(NORMAL).total = 9
