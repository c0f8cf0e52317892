"""Which active allergy warnings a drug matches, for the warning shown before a medication is saved.

The rule, one place for every side (the laptop's pages now; the server's and
the CLI may call it too): a warning matches when it is an allergy, active, and
the drug's name and the warning's text share a word of four letters or more,
compared without case or accents ("Penicillin V" matches "penicillin:
andnöd"). It catches the drug named in the warning; it does not know drug
classes (an allergy to "penicillin" does not match "amoxicillin"), which is
why the pages show every active allergy beside the medication form as well.
"""

import re
import unicodedata

__all__ = ["MIN_WORD", "words", "matching_allergies"]

#: Shorter words ("mg", "x", "1") are doses and units, not names.
MIN_WORD = 4


def words(text):
    """The words of ``text`` of at least MIN_WORD letters, lower case and without accents."""
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return {w for w in re.findall(r"[a-z]+", plain) if len(w) >= MIN_WORD}


def matching_allergies(drug, warnings):
    """The warnings (field dicts) that are active allergies sharing a word with ``drug``, in the given order."""
    named = words(drug)
    return [w for w in warnings if w.get("kind") == "allergy" and w.get("active") is not False
            and not w.get("entered_in_error") and named & words(w.get("text"))]
