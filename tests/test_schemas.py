"""The webhook payload schemas' quick check never accepts what marshmallow refuses."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_maildelivery import schemas
from flask_maildelivery.webhooks import adapter_classes

#: Every flat payload schema of every provider module.
FLAT = [
    cls
    for module in dict.fromkeys(sys.modules[a.__module__] for a in adapter_classes().values())
    for cls in vars(module).values()
    if isinstance(cls, type)
    and issubclass(cls, schemas.FlatPayloadSchema)
    and cls is not schemas.FlatPayloadSchema
]
SCHEMAS = {type(adapter.schema).__name__: adapter.schema for adapter in adapter_classes().values()}
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["1700000000", "1700000000.5", "1e9", " 12", "-1"]),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.lists(st.text(max_size=4), max_size=2),
)


def test_every_payload_schema_without_schema_rules_is_flat() -> None:
    assert {cls.__name__ for cls in FLAT} >= {"SendGridEventSchema", "BrevoEventSchema"}
    assert schemas.quick_validator(SCHEMAS["SendGridEventSchema"]) is not None
    assert schemas.quick_validator(SCHEMAS["PostmarkRecordSchema"]) is None
    assert schemas.quick_validator(SCHEMAS["SESEventSchema"]) is None


@pytest.mark.parametrize("cls", FLAT, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_quick_check_accepts_only_what_the_schema_accepts(cls: type, data: Any) -> None:
    schema = cls()
    # None: a field type the quick check does not know (marshmallow decides alone)
    check = schemas.quick_validator(schema) or (lambda item: False)
    keys = [f.data_key or name for name, f in schema.load_fields.items()]
    item = data.draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys)))
    if check(item):
        assert schema.validate(item) == {}
