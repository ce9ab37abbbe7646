"""One E.164 form per number, whatever way it is written; its hash, mask and stored forms."""

from __future__ import annotations

import hashlib
import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.phone import e164, looks_like_phone, mask_number, number_hash, protect, protect_sender

SALT = "test-salt"

#: (region, type) pairs libphonenumber has an example number for.
EXAMPLES = sorted(
    (region, kind)
    for region in phonenumbers.SUPPORTED_REGIONS
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    if phonenumbers.example_number_for_type(region, kind) is not None
)
_F = phonenumbers.PhoneNumberFormat


def _written(number: phonenumbers.PhoneNumber, style: str, rng: random.Random) -> str:
    """One way a person or a provider writes the number, all with the country code."""
    e = phonenumbers.format_number(number, _F.E164)
    digits = e[1:]
    if style == "e164":
        return e
    if style == "digits":
        return digits
    if style == "00":
        return "00" + digits
    if style == "international":
        return phonenumbers.format_number(number, _F.INTERNATIONAL)
    if style == "rfc3966":
        return phonenumbers.format_number(number, _F.RFC3966)
    # separators a person types between digits, kept after the country code
    cc = str(number.country_code)
    out = ["+", cc, " "]
    for ch in digits[len(cc) :]:
        out.append(ch)
        if rng.random() < 0.3:
            out.append(rng.choice([" ", "-", ".", " - "]))
    text = "".join(out).rstrip(" -.")
    return f" {text} " if rng.random() < 0.5 else text


@settings(max_examples=150, deadline=None)
@given(
    example=st.sampled_from(EXAMPLES),
    style=st.sampled_from(["e164", "digits", "00", "international", "rfc3966", "typed"]),
    tail=st.integers(min_value=0, max_value=999),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_written_form_normalises_to_the_same_e164(
    example: tuple[str, int], style: str, tail: int, seed: int
) -> None:
    region, kind = example
    base = phonenumbers.example_number_for_type(region, kind)
    assert base is not None
    # the national significant number (with an Italian-style leading zero: CI, IT, ...)
    national = phonenumbers.national_significant_number(base)
    if len(national) > 4:  # another number of the same range: the last three digits vary
        national = national[:-3] + f"{tail:03d}"
    number = phonenumbers.parse(f"+{base.country_code}{national}", None)
    expected = phonenumbers.format_number(number, _F.E164)
    written = _written(number, style, random.Random(seed))
    assert e164(written) == expected, written
    assert number_hash(written, SALT) == number_hash(expected, SALT)


@pytest.mark.parametrize(
    "written",
    [
        "+1 (415) 555-0100",
        "14155550100",
        "+14155550100",
        "0014155550100",
        "tel:+1-415-555-0100",
        " +1.415.555.0100 ",
    ],
)
def test_the_issues_example_is_one_number(written: str) -> None:
    assert e164(written) == "+14155550100"


def test_a_trunk_zero_after_the_country_code_is_dropped() -> None:
    assert e164("+44 (0)20 7946 0000") == "+442079460000"


@pytest.mark.parametrize(
    "text",
    [None, "", "ACME", "12345", "+0123456789", "0412 345 678", "+1 415 CALL NOW", "+" + "9" * 20],
)
def test_what_is_no_number_with_a_country_code_is_none(text: str | None) -> None:
    assert e164(text) is None


def test_hash_is_the_salted_sha256_of_the_e164_form() -> None:
    expected = hashlib.sha256(f"{SALT}|+14155550100".encode()).hexdigest()
    assert number_hash("+14155550100", SALT) == expected
    assert number_hash("1 415 555 0100", SALT) == expected
    assert number_hash("+14155550100", "other") != expected


def test_a_value_that_is_no_number_is_still_hashed_as_it_is() -> None:
    assert number_hash(" 12345 ", SALT) == hashlib.sha256(f"{SALT}|12345".encode()).hexdigest()


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        pytest.param("+14155550100", "*********00", id="e164"),
        pytest.param("+1 (415) 555-0199", "*********99", id="formatted"),
        pytest.param("12", "**", id="two-digits"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_keeps_the_last_two_digits(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_protect_per_mode() -> None:
    hashed = number_hash("+14155550100", SALT)
    assert protect("14155550100", pii_mode="hash", salt=SALT) == (hashed, None)
    assert protect("14155550100", pii_mode="mask", salt=SALT) == ("*********00", None)
    assert protect("14155550100", pii_mode="clear", salt=SALT) == (hashed, "+14155550100")
    assert protect(None, pii_mode="hash", salt=SALT) == (None, None)
    with pytest.raises(ValueError, match="pii_mode"):
        protect("+14155550100", pii_mode="plain", salt=SALT)


def test_sender_ids_and_short_codes_are_not_protected() -> None:
    assert not looks_like_phone("ACME") and not looks_like_phone("12345")
    assert protect_sender("ACME", pii_mode="hash", salt=SALT) == ("ACME", None)
    assert protect_sender("12345", pii_mode="mask", salt=SALT) == ("12345", None)
    assert protect_sender("+12065550123", pii_mode="hash", salt=SALT) == (
        number_hash("+12065550123", SALT),
        None,
    )
