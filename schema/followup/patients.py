"""What the follow-up knows of a patient: in home care, a SÄBO resident, age.

Each takes a patient as a person sees it (``{"id": ..., field: value}``).
"""

from .. import identity
from ..errors import HemsyncError

__all__ = ["in_home_care", "is_sabo", "age_on"]


def in_home_care(patient):
    """True for a patient enrolled in municipal home health care or living at SÄBO.

    A patient record is made for someone the home-care doctors serve; one that
    says where the patient is cared for (a care setting, a start of home care, a
    move into SÄBO) and is not entered in error is in home care.
    """
    if patient.get("entered_in_error"):
        return False
    return bool(patient.get("care_setting") or patient.get("enrolled_at") or patient.get("moved_in_at"))


def is_sabo(patient):
    """True for a SÄBO resident (care setting ``sabo``) not entered in error."""
    return patient.get("care_setting") == "sabo" and not patient.get("entered_in_error")


def age_on(patient, day):
    """The patient's age in whole years on ``day`` (the birthday counts on the day), or None when unknown."""
    number = patient.get("personnummer")
    if not isinstance(number, str) or len(number) != 12 or not number.isdigit():
        return None
    try:
        return identity.age_on(number, day)
    except HemsyncError:
        return None
