"""Per-message callback tokens: `/webhooks/{provider}/{token}`.

The sender puts a token into each message's callback URL; it carries tenant, campaign and
optionally our own message reference, HMAC-signed so that nobody can forge or alter it.
Format: base64url(JSON fields) "." base64url(HMAC-SHA256(secret, first part)[:16]).
Several secrets may be active for rotation; the first one signs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence

import orjson

from ingress.errors import UnknownToken
from ingress.providers._common import hmac_digest

_MAX_TOKEN = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, head: str) -> str:
    return _b64(hmac_digest(secret, head.encode())[:16])


def issue(fields: Mapping[str, str], secret: str) -> str:
    """A URL-safe token for `fields` (tenant, campaign, ref ...)."""
    head = _b64(orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS))
    return f"{head}.{_mac(secret, head)}"


def verify(token: str, secrets: Sequence[str]) -> dict[str, str]:
    """The token's fields, or UnknownToken when it is forged, altered or malformed."""
    if not secrets or not token.isascii() or len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise UnknownToken("unknown callback token")
    head, mac = token.split(".")
    if not any(hmac.compare_digest(_mac(s, head).encode(), mac.encode()) for s in secrets):
        raise UnknownToken("unknown callback token")
    try:
        fields = orjson.loads(_unb64(head))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise UnknownToken("unknown callback token") from exc
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise UnknownToken("unknown callback token")
    return fields
