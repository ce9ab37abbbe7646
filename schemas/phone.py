"""Phone numbers: one E.164 form, and how a number is protected (hash, mask, clear).

Every part of the pipeline that keys, stores or compares a phone number goes through
here, so `+1 (415) 555-0100`, `14155550100`, `0014155550100` and `tel:+1-415-555-0100`
are one number everywhere: one suppression entry, one hash in ClickHouse, one erasure.

`e164(text)` is the normal form or None. Digits with an optional `+` (what providers
send) take a fast path; anything with separators, a `tel:` prefix or a trunk `(0)` is
parsed by libphonenumber (`phonenumbers`). A number is always read as international:
without a country code there is no way to tell which country a local number belongs to.

`number_hash(number, salt)` is the salted SHA-256 of the E.164 form: the suppression
list's key, the stored form in ClickHouse (`DLR_PII_MODE=hash`), what an erasure looks
for. `protect(number, mode, salt)` is the stored form under a PII mode.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Final, Literal, get_args

import phonenumbers

__all__ = [
    "MODES",
    "PiiMode",
    "e164",
    "looks_like_phone",
    "mask_number",
    "number_hash",
    "number_key",
    "protect",
    "protect_sender",
]

PiiMode = Literal["hash", "mask", "clear"]
MODES: Final[frozenset[str]] = frozenset(get_args(PiiMode))

#: Already E.164 digits, with or without the '+': the fast path (country codes never
#: start with 0; E.164 allows at most 15 digits; 7 is the shortest real number).
_DIGITS = re.compile(r"\+?([1-9]\d{6,14})")
#: What may appear in a written phone number besides digits.
_WRITTEN = re.compile(r"^(?:tel:)?\s*\+?[\d\s().\-/]+$", re.IGNORECASE)
_NON_DIGIT = re.compile(r"\D")
#: Shorter all-digit senders are short codes (business identifiers, not personal data).
_MIN_PHONE_DIGITS = 7


def e164(text: str | None) -> str | None:
    """The number in E.164 (`+14155550100`), or None when `text` is not a phone number
    written with its country code."""
    if not text:
        return None
    text = text.strip()
    match = _DIGITS.fullmatch(text)
    if match is not None:
        return "+" + match.group(1)
    if len(text) > 64 or not _WRITTEN.match(text):
        return None
    return _parsed(text)


@lru_cache(maxsize=65536)
def _parsed(text: str) -> str | None:
    """libphonenumber's reading of a written number (cached: the same few numbers recur)."""
    body = text[4:].strip() if text[:4].lower() == "tel:" else text
    if body.startswith("00"):
        body = "+" + body[2:]  # the international call prefix most of the world dials
    elif not body.startswith("+"):
        body = "+" + body
    try:
        parsed = phonenumbers.parse(body, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted if _DIGITS.fullmatch(formatted) else None


def number_key(text: str) -> str:
    """What a number is hashed as: its E.164 form, else the text itself, stripped (a
    provider may send something that is no number; it is still protected)."""
    return e164(text) or text.strip()


def number_hash(text: str, salt: str) -> str:
    """Salted SHA-256 hex of the number's E.164 form: the suppression key, the stored
    form in ClickHouse, what an erasure matches."""
    return hashlib.sha256(f"{salt}|{number_key(text)}".encode()).hexdigest()


def mask_number(text: str) -> str:
    """'+14155550100' -> '*********00': digits only, all but the last two starred."""
    digits = _NON_DIGIT.sub("", text)
    if len(digits) <= 2:
        return "*" * len(digits)
    return "*" * (len(digits) - 2) + digits[-2:]


def looks_like_phone(value: str) -> bool:
    """True for a phone number; False for alphanumeric sender IDs and short codes."""
    return bool(_WRITTEN.match(value)) and len(_NON_DIGIT.sub("", value)) >= _MIN_PHONE_DIGITS


def protect(
    number: str | None, *, pii_mode: PiiMode | str, salt: str
) -> tuple[str | None, str | None]:
    """(stored form, clear copy) of a phone number under `pii_mode`:
    `hash` -> (hash, None), `mask` -> (masked, None), `clear` -> (hash, E.164 number)."""
    if number is None or number == "":
        return None, None
    if pii_mode == "hash":
        return number_hash(number, salt), None
    if pii_mode == "mask":
        return mask_number(number), None
    if pii_mode == "clear":
        return number_hash(number, salt), number_key(number)
    raise ValueError(f"unknown pii_mode {pii_mode!r}")


def protect_sender(
    sender: str | None, *, pii_mode: PiiMode | str, salt: str
) -> tuple[str | None, str | None]:
    """Like `protect`, but sender IDs and short codes are kept as they are."""
    if sender is None or sender == "":
        return None, None
    if not looks_like_phone(sender):
        if pii_mode not in MODES:
            raise ValueError(f"unknown pii_mode {pii_mode!r}")
        return sender, None
    return protect(sender, pii_mode=pii_mode, salt=salt)
