"""Swedish identities: personnummer, samordningsnummer and HSA-id.

A personnummer is stored as 12 digits ``YYYYMMDDNNNC`` with no separator, so one
patient has one spelling on every replica. A samordningsnummer (coordination number)
has the same shape with 60 added to the day. ``C`` is a Luhn check digit over the
10-digit form ``YYMMDDNNN``. An HSA-id names a member of the care staff.
"""

import re
from datetime import date

from schema.errors import InvalidRecord

__all__ = [
    "TEST_PERSONNUMMER",
    "age_on",
    "birth_date",
    "is_samordningsnummer",
    "make_test_personnummer",
    "normalize_personnummer",
    "validate_hsa_id",
]

# [0-9], not \d: \d would accept Arabic-Indic and other Unicode digits.
_PERSONNUMMER = re.compile(
    r"(?P<century>[0-9]{2})?(?P<yymmdd>[0-9]{6})(?P<sep>[-+]?)(?P<serial>[0-9]{3})(?P<check>[0-9])"
)
_HSA_ID = re.compile(r"SE[0-9]{10}-[A-Z0-9]{1,31}")
_SAMORDNING_OFFSET = 60


def _luhn(digits):
    """The Luhn check digit of a string of digits, weighting the first by 2."""
    total = 0
    for i, d in enumerate(digits):
        product = int(d) * (2 - i % 2)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def _reject(message):
    return InvalidRecord(message, details={"personnummer": [message]})


def _calendar_date(yyyymmdd):
    """The birth date of 8 digits, or None if they are not a real date."""
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])
    if day > _SAMORDNING_OFFSET:
        day -= _SAMORDNING_OFFSET
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _century(yy, sep, today):
    """The two century digits of a 10-digit number written on ``today``."""
    # Skatteverket's rule is by calendar year: the "-" becomes "+" from the start of
    # the year the person turns 100, so "-" means born within the last 99 years.
    latest = today.year - 100 if sep == "+" else today.year
    return f"{(latest - (latest - yy) % 100) // 100:02d}"


def normalize_personnummer(text, today=None):
    """Validate a personnummer or samordningsnummer and return its 12 digits."""
    is_text = isinstance(text, str)
    shown = text.strip() if is_text else repr(text)
    match = _PERSONNUMMER.fullmatch(shown) if is_text else None
    # A 12-digit number carries its century, so "+" there is not a form anyone writes.
    if match is None or (match["century"] and match["sep"] == "+"):
        raise _reject(
            f"personnummer {shown} must be 12 digits (YYYYMMDDNNNC) "
            "or 10 digits with - or + (YYMMDD-NNNC)"
        )
    century = match["century"]
    if century is None:
        century = _century(int(match["yymmdd"][:2]), match["sep"], today or date.today())
    digits = century + match["yymmdd"] + match["serial"] + match["check"]
    if _calendar_date(digits[:8]) is None:
        raise _reject(f"personnummer {shown} is not a real date: check the birth date")
    expected = _luhn(digits[2:11])
    if expected != int(digits[11]):
        raise _reject(
            f"personnummer {shown} has a wrong check digit (expected {expected}): "
            "check the last digit"
        )
    return digits


def is_samordningsnummer(pnr12):
    """Whether a normalized number is a samordningsnummer (day plus 60)."""
    return int(pnr12[6:8]) > _SAMORDNING_OFFSET


def birth_date(pnr12):
    """The birth date of a normalized personnummer or samordningsnummer."""
    born = _calendar_date(pnr12[:8])
    if born is None:
        raise _reject(f"personnummer {pnr12} is not a real date: check the birth date")
    return born


def age_on(pnr12, day):
    """Completed years of age on ``day``."""
    born = birth_date(pnr12)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def validate_hsa_id(text):
    """Validate an HSA-id such as SE2321000131-E000000000001; return it uppercased."""
    shown = text.strip() if isinstance(text, str) else repr(text)
    # isascii first: str.upper() turns some non-ASCII letters into ASCII ones ("ﬀ" -> "FF").
    if not (isinstance(text, str) and shown.isascii() and _HSA_ID.fullmatch(shown.upper())):
        message = (
            f"HSA-id {shown} must be SE, 10 digits, a hyphen and 1-31 letters or digits "
            "(e.g. SE2321000131-E000000000001)"
        )
        raise InvalidRecord(message, details={"hsa_id": [message]})
    return shown.upper()


def make_test_personnummer(birth, serial):
    """Make a valid 12-digit personnummer for test data only, never for a patient."""
    if not 0 <= serial <= 999:
        raise ValueError(f"serial must be 0-999, got {serial}")
    # Not %Y: strftime does not zero-pad years before 1000 on every platform.
    body = f"{birth.year:04d}{birth.month:02d}{birth.day:02d}{serial:03d}"
    return body + str(_luhn(body[2:]))


# 19121212-1212 is Tolvan Tolvansson, Skatteverket's long-published test identity.
# The others were generated with make_test_personnummer for tests: they are invented,
# not taken from any person. 19201230-... is over 100 (written with + in 10 digits);
# 19380432-... is a samordningsnummer (born 2 April 1938, day + 60).
TEST_PERSONNUMMER = (
    "191212121212",
    "193804029829",
    "192012309817",
    "193804629834",
)
