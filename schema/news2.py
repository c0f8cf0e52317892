"""NEWS2, the National Early Warning Score 2, from one observation.

Implements the chart of the Royal College of Physicians, *National Early Warning
Score (NEWS) 2: Standardising the assessment of acute-illness severity in the NHS*
(London: RCP, 2017), including SpO2 scale 2 for patients with hypercapnic
respiratory failure. Each of the seven parameters scores 0-3 and the total bands
the clinical risk: low (0-4), low-medium (0-4 with one parameter scoring 3),
medium (5-6) and high (7 or more).

Readings are taken at the chart's resolution, rounding half up: temperature to one
decimal, everything else to whole numbers.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from schema.errors import InvalidRecord

__all__ = ["PARAMETERS", "News2", "score", "score_fields"]

PARAMETERS = (
    "resp_rate",
    "spo2",
    "supplemental_o2",
    "temperature",
    "systolic_bp",
    "pulse",
    "consciousness",
)

# Each band is (highest reading in the band, score); a reading above every band
# takes the last score.
_RESP_RATE = ((8, 3), (11, 1), (20, 0), (24, 2), (None, 3))
_SPO2_SCALE_1 = ((91, 3), (93, 2), (95, 1), (None, 0))
_SPO2_SCALE_2_ON_AIR = ((83, 3), (85, 2), (87, 1), (None, 0))
_SPO2_SCALE_2_ON_OXYGEN = ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2), (None, 3))
_TEMPERATURE = ((Decimal("35.0"), 3), (Decimal("36.0"), 1), (Decimal("38.0"), 0),
                (Decimal("39.0"), 1), (None, 2))
_SYSTOLIC_BP = ((90, 3), (100, 2), (110, 1), (219, 0), (None, 3))
_PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (None, 3))
_CONSCIOUSNESS = {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}


@dataclass(frozen=True)
class News2:
    """A NEWS2 score: the total, its band and how it was made up."""

    total: int
    partial: bool
    missing: tuple[str, ...]
    parameter_scores: dict[str, int]
    max_single: int
    band: str

    @property
    def emergency(self):
        """Whether the total is 7 or more: an emergency response."""
        return self.total >= 7

    @property
    def medium_risk(self):
        """Whether the total is 5-6 or any single parameter scores 3: an urgent response."""
        return 5 <= self.total <= 6 or self.max_single == 3


def _invalid(key, message):
    return InvalidRecord(message, details={key: [message]})


def _reading(observation, key, exponent):
    """The reading rounded to the chart's resolution, or None when it is missing."""
    value = observation.get(key)
    if value is None:
        return None
    # bool is an int in Python; True as a pulse is a data error, not a pulse of 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(key, f"{key} must be a number, got {value!r}")
    reading = Decimal(str(value))
    if not reading.is_finite():
        raise _invalid(key, f"{key} must be a number, got {value!r}")
    return reading.quantize(Decimal(exponent), rounding=ROUND_HALF_UP)


def _band(reading, bands):
    return next(points for highest, points in bands if highest is None or reading <= highest)


def _spo2_bands(observation, on_oxygen):
    scale = observation.get("spo2_scale")
    if isinstance(scale, bool) or scale not in (None, 1, 2):
        raise _invalid("spo2_scale", f"spo2_scale must be 1 or 2, got {scale!r}")
    if scale != 2:
        return _SPO2_SCALE_1
    # With oxygen unknown, score as on air: a partial total stays a lower bound.
    return _SPO2_SCALE_2_ON_OXYGEN if on_oxygen else _SPO2_SCALE_2_ON_AIR


def score(observation):
    """Score one observation (the observation record's fields) on the NEWS2 chart."""
    on_oxygen = observation.get("supplemental_o2")
    if on_oxygen is not None and not isinstance(on_oxygen, bool):
        raise _invalid(
            "supplemental_o2", f"supplemental_o2 must be true or false, got {on_oxygen!r}"
        )
    consciousness = observation.get("consciousness")
    if consciousness is not None and (
        not isinstance(consciousness, str) or consciousness not in _CONSCIOUSNESS
    ):
        raise _invalid(
            "consciousness", f"consciousness must be one of A, C, V, P, U, got {consciousness!r}"
        )
    readings = {
        "resp_rate": (_reading(observation, "resp_rate", "1"), _RESP_RATE),
        "spo2": (_reading(observation, "spo2", "1"), _spo2_bands(observation, on_oxygen)),
        "temperature": (_reading(observation, "temperature", "0.1"), _TEMPERATURE),
        "systolic_bp": (_reading(observation, "systolic_bp", "1"), _SYSTOLIC_BP),
        "pulse": (_reading(observation, "pulse", "1"), _PULSE),
    }
    scores = {key: _band(reading, bands) for key, (reading, bands) in readings.items()
              if reading is not None}
    if on_oxygen is not None:
        scores["supplemental_o2"] = 2 if on_oxygen else 0
    if consciousness is not None:
        scores["consciousness"] = _CONSCIOUSNESS[consciousness]
    parameter_scores = {key: scores[key] for key in PARAMETERS if key in scores}
    missing = tuple(key for key in PARAMETERS if key not in scores)
    total = sum(parameter_scores.values())
    max_single = max(parameter_scores.values(), default=0)
    if total >= 7:
        band = "high"
    elif total >= 5:
        band = "medium"
    elif max_single == 3:
        band = "low_medium"
    else:
        band = "low"
    return News2(total, bool(missing), missing, parameter_scores, max_single, band)


def score_fields(observation):
    """The NEWS2 fields stored on an observation record."""
    result = score(observation)
    return {"news2": result.total, "news2_partial": result.partial}
