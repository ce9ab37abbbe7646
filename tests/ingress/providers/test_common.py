"""The hand-written form parser against the standard library's."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress.errors import MalformedPayload
from ingress.providers._common import parse_form

#: Characters that matter to the format, escapes (valid, invalid, non-UTF-8) and text.
_PIECES = st.sampled_from(
    ["&", "=", "+", "%", "%2B", "%26", "%3D", "%C3%A9", "%ZZ", "%E9", "%", "a", "Sid", " ", "é"]
)


def _stdlib(body: bytes) -> list[tuple[str, str]] | None:
    text = body.decode("utf-8")
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        return None


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_parse_form_matches_parse_qsl(text: str) -> None:
    body = text.encode()
    expected = _stdlib(body)
    if expected is None:
        with pytest.raises(MalformedPayload):
            parse_form(body)
    else:
        assert parse_form(body) == expected


def test_parse_form_examples() -> None:
    assert parse_form(b"") == []
    assert parse_form(b"To=%2B1555&Body=a+b&Empty=") == [
        ("To", "+1555"),
        ("Body", "a b"),
        ("Empty", ""),
    ]
    with pytest.raises(MalformedPayload):
        parse_form(b"a=1&&b=2")
    with pytest.raises(MalformedPayload):
        parse_form(b"\xff=1")
