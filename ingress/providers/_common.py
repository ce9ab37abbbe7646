"""Small helpers shared by the provider verifiers: compare, key ids, time windows, forms."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl

from ingress.errors import MalformedPayload, MissingHeader, StaleTimestamp


@functools.lru_cache(maxsize=1024)
def key_id(secret: str | bytes) -> str:
    """A stable, non-reversible identifier of a secret, safe to log and store."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return "k_" + hashlib.sha256(b"dlr-key-id\x00" + raw).hexdigest()[:12]


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison of two signatures (str compared as UTF-8)."""
    ab = a.encode() if isinstance(a, str) else a
    bb = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(ab, bb)


def require(headers: Mapping[str, str], name: str) -> str:
    """The value of a (lower-case) header, or MissingHeader."""
    value = headers.get(name)
    if not value:
        raise MissingHeader(f"missing header {name}")
    return value


def check_window(timestamp: str | float, now: float, window: float) -> float:
    """Parse a unix-seconds timestamp and refuse it outside ±window of now."""
    try:
        ts = float(timestamp)
    except (TypeError, ValueError) as exc:
        raise StaleTimestamp(f"timestamp {str(timestamp)[:32]!r} is not unix seconds") from exc
    if ts != ts or abs(now - ts) > window:  # NaN or outside the window
        raise StaleTimestamp(f"timestamp outside ±{window:.0f}s window")
    return ts


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """application/x-www-form-urlencoded pairs in order, blanks kept, strict UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload("form body is not UTF-8") from exc
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as exc:
        raise MalformedPayload("form body does not parse") from exc


def random_secret(nbytes: int = 32) -> str:
    """A fresh URL-safe secret for local development credentials."""
    return _secrets.token_urlsafe(nbytes)
