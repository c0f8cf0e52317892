"""Request bodies: the compiled check of a well-formed body answers exactly what marshmallow answers."""

import uuid

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from server import bodies
from server.errors import InvalidBatch

SQLITE_MAX = 2 ** 63 - 1
ANY_JSON = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False),
    st.integers(min_value=-2 ** 65, max_value=2 ** 65),
    st.sampled_from([0, -1, SQLITE_MAX, SQLITE_MAX + 1, -SQLITE_MAX - 1, -SQLITE_MAX - 2]),
    st.text(max_size=120), st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=3),
)
# Ids at and past their bounds (1 to 100 characters), as well as any text.
IDS = st.one_of(st.text(max_size=12), st.sampled_from(["", "x" * 100, "ö" * 100, "x" * 101]))
WELL_FORMED = {
    "change_id": IDS, "record_type": st.text(max_size=12), "record_id": IDS, "device_id": st.text(max_size=12),
    "op": st.one_of(st.none(), st.integers(min_value=-SQLITE_MAX - 2, max_value=SQLITE_MAX + 1)),
    "hlc": st.text(max_size=24), "base": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    "fields": st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=4), "resolves": st.lists(st.text(), max_size=2),
}
REQUIRED = {"change_id", "record_type", "record_id", "op", "hlc", "fields"}


@st.composite
def changes(draw):
    """A well-formed change, now and then with one key of any JSON or null, missing, or no change's key added."""
    change = {key: draw(good) for key, good in WELL_FORMED.items()
              if key in REQUIRED or draw(st.booleans())}
    flaw = draw(st.sampled_from(["none", "none", "any", "null", "absent", "unknown"]))
    key = draw(st.sampled_from(sorted(WELL_FORMED)))
    if flaw in ("any", "null"):
        change[key] = draw(ANY_JSON) if flaw == "any" else None
    elif flaw == "absent":
        change.pop(key, None)
    elif flaw == "unknown":
        change[draw(st.text(min_size=1, max_size=8))] = draw(ANY_JSON)
    return change


def _marshmallow(schema, body):
    try:
        return schema.load(body)
    except ValidationError:
        return "refused"


@settings(max_examples=400, deadline=None)
@given(st.lists(changes(), max_size=3),
       st.one_of(st.just("absent"), st.integers(min_value=-1, max_value=SQLITE_MAX + 1), ANY_JSON))
def test_the_compiled_push_check_answers_what_marshmallow_answers_or_leaves_it_to_marshmallow(batch, pending):
    body = {"changes": batch, **({} if pending == "absent" else {"pending": pending})}
    schema = bodies.PushRequestSchema()
    compiled = bodies._compiled(schema)(body)
    event("answered by the compiled check" if compiled is not None else "left to marshmallow")
    if compiled is not None:
        assert compiled == _marshmallow(schema, body)


def test_a_well_formed_batch_is_answered_by_the_compiled_check_with_its_defaults():
    change = {"change_id": str(uuid.uuid4()), "record_type": "visit", "record_id": str(uuid.uuid4()),
              "op": 7, "hlc": "0001764079200000-000000", "fields": {"plan": "vila"}}
    body = {"changes": [change]}
    schema = bodies.PushRequestSchema()
    loaded = bodies._compiled(schema)(body)
    assert loaded == schema.load(body) == {"pending": 0, "changes": [{**change, "base": {}, "resolves": []}]}


def test_a_malformed_batch_is_still_refused_with_marshmallows_words():
    body = {"changes": [{"change_id": "", "record_type": "visit", "record_id": "r", "op": True, "hlc": "h",
                         "fields": {}}]}
    with pytest.raises(InvalidBatch, match="push body has the wrong shape") as refused:
        bodies.load(bodies.PushRequestSchema(), body, "push body")
    assert set(refused.value.details["changes"][0]) == {"change_id", "op"}


def test_only_the_push_batch_is_compiled_other_bodies_stay_with_marshmallow():
    assert bodies._compiled(bodies.PushRequestSchema()) is not None
    assert bodies._compiled(bodies.AccessLogRequestSchema()) is None
