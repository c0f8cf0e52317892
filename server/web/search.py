"""What a search box on the pages matches: one rule for every list a person searches."""

import re

__all__ = ["matches"]


def matches(query, *texts, personnummer=None):
    """Whether ``query`` names the thing: part of one of ``texts`` (case ignored), or of the personnummer's digits.

    The personnummer matches on six or more digits typed in any form
    (``19121212-1212``, ``121212``), never on fewer: two digits would match everyone.
    """
    digits = re.sub(r"\D", "", query)
    if personnummer and len(digits) >= 6 and digits in personnummer:
        return True
    folded = query.casefold()
    return any(folded in (text or "").casefold() for text in texts)
