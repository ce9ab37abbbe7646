"""Shared lookup for the provider mapping tables: status first, error code refines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from schemas.lifecycle import DEFAULT_REASON, FailureReason, State

#: An error-code row: the state it forces (None keeps the status mapping) and the reason.
ErrorRow = tuple[State | None, FailureReason]


def resolve(
    status: str,
    code: str | None,
    statuses: Mapping[str, State],
    errors: Mapping[str, ErrorRow],
    *,
    ok_codes: frozenset[str] = frozenset(),
) -> tuple[State, FailureReason | None, bool]:
    """(state, failure_reason, mapped) for a provider status and optional error code.

    An unknown status becomes `unknown` with mapped=False; an unknown error code on a
    failure keeps the status mapping with the state's default reason and mapped=False.
    Error codes never turn a successful/intermediate status into a failure unless the
    table row says so explicitly.
    """
    state = statuses.get(status)
    if state is None:
        return State.UNKNOWN, FailureReason.UNKNOWN, False
    if code is None or code == "" or code in ok_codes:
        return state, DEFAULT_REASON.get(state), True
    row = errors.get(code)
    if row is None:
        mapped = state not in DEFAULT_REASON  # an unknown code on a success is harmless
        return state, DEFAULT_REASON.get(state), mapped
    forced, reason = row
    if forced is not None and state in DEFAULT_REASON:
        state = forced
    if state not in DEFAULT_REASON:
        return state, None, True
    return state, reason, True


def parse_time(value: object) -> datetime | None:
    """ISO-8601 (with Z) or unix seconds/milliseconds to an aware UTC datetime; None if not."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            number = float(value)
            if number > 1e11:  # milliseconds
                number /= 1000.0
            return datetime.fromtimestamp(number, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def text(value: object) -> str | None:
    """A non-empty string form of a scalar, else None."""
    if value is None or isinstance(value, dict | list):
        return None
    result = str(value).strip()
    return result or None
