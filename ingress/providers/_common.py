"""Small helpers shared by the provider verifiers: compare, key ids, time windows, forms."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from ingress.errors import MalformedPayload, MissingHeader, StaleTimestamp


@functools.lru_cache(maxsize=1024)
def key_id(secret: str | bytes) -> str:
    """A stable, non-reversible identifier of a secret, safe to log and store."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return "k_" + hashlib.sha256(b"dlr-key-id\x00" + raw).hexdigest()[:12]


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@functools.lru_cache(maxsize=256)
def _pads(key: bytes, algorithm: str) -> tuple[Any, Any]:
    """The hash states after the inner and outer key blocks of HMAC (RFC 2104), per key."""
    block = hashlib.new(algorithm).block_size
    if len(key) > block:
        key = hashlib.new(algorithm, key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.new(algorithm, key.translate(_IPAD))
    return inner, hashlib.new(algorithm, key.translate(_OPAD))


def hmac_digest(key: str | bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """HMAC of `message`, the same bytes as `hmac.digest(key, message, algorithm)`.

    OpenSSL 3 sets up a whole HMAC context per call (several microseconds, more than hashing
    a webhook body); here the key's inner and outer states are computed once per key and
    copied, so a signature costs two small hash updates.
    """
    inner, outer = _pads(key.encode() if isinstance(key, str) else key, algorithm)
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


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
    """application/x-www-form-urlencoded pairs in order, blanks kept, strict UTF-8.

    What `parse_qsl(text, keep_blank_values=True, strict_parsing=True)` returns (a field
    without `=` is malformed), without its general-purpose overhead: it cost a Twilio
    webhook more than its signature (tests/ingress/providers/test_common.py holds them equal).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload("form body is not UTF-8") from exc
    if not text:
        return []
    pairs = []
    for field in text.split("&"):
        name, sep, value = field.partition("=")
        if not sep:
            raise MalformedPayload("form body does not parse")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        pairs.append((name, value))
    return pairs


def random_secret(nbytes: int = 32) -> str:
    """A fresh URL-safe secret for local development credentials."""
    return _secrets.token_urlsafe(nbytes)
