"""The raw envelope: the ingress's fast writer and the dataclass agree byte for byte."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import RawEnvelope, encode

text = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=50)
@given(
    fields=st.fixed_dictionaries(
        {
            "provider": text,
            "message_id": text,
            "provider_message_id": text,
            "received_at": st.floats(0, 2e9),
            "method": st.sampled_from(["GET", "POST"]),
            "url": text,
            "headers": st.dictionaries(text, text, max_size=4),
            "content_type": text,
            "body": text,
            "body_encoding": st.sampled_from(["utf-8", "hex"]),
            "body_sha256": text,
            "payload": st.dictionaries(text, json_values, max_size=4),
            "key_id": text,
            "token": st.dictionaries(text, text, max_size=2),
        },
        optional={
            "event_id": st.none() | text,
            "part": st.integers(0, 10),
            "parts": st.integers(1, 10),
        },
    )
)
def test_encode_writes_what_the_dataclass_writes(fields: dict[str, Any]) -> None:
    wire = encode(**fields)
    assert wire == RawEnvelope(**fields).to_json()
    assert RawEnvelope.from_json(wire) == RawEnvelope(**fields)
