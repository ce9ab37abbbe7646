"""The raw envelope the ingress writes to `dlr.raw.v1` (key = message_id).

It keeps everything needed to re-verify, audit and re-map a report later: the provider,
the externally visible URL, non-secret headers, the raw body (or this record's part of a
batch) and its SHA-256, plus what the ingress learned while verifying (which key matched,
callback-token fields) and the record payload the provider module extracted.

`kind` is `receipt` (a status report) or `inbound`: an opt-out keyword a person sent
(STOP / START / HELP), keyed `inbound:<number hash>` instead of by message id so that one
person's keywords reach one partition in the order they arrived. Its payload is what the
ingress read from it (`INBOUND_FIELDS`), never the message text beyond the keyword.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

ENVELOPE_VERSION = 1
#: Key prefix of inbound keyword records on `dlr.raw.v1` (then the number's hash).
INBOUND_KEY_PREFIX = b"inbound:"
#: The payload of an inbound record: the person's E.164 number, the number written to,
#: the keyword kind (stop/start/help), the word as listed, its language, the provider's time.
INBOUND_FIELDS = ("number", "to", "keyword", "word", "language", "timestamp")


@dataclass(frozen=True, slots=True)
class RawEnvelope:
    """One verified status report as received, before any interpretation."""

    provider: str
    message_id: str
    provider_message_id: str
    #: Unix seconds (float) at which the ingress received the request.
    received_at: float
    method: str
    url: str
    headers: dict[str, str]
    content_type: str
    #: Raw request body (or this record's part of a batch), UTF-8 text; see body_encoding.
    body: str
    body_encoding: str
    #: SHA-256 hex of the whole request body as received.
    body_sha256: str
    payload: dict[str, Any]
    key_id: str
    event_id: str | None = None
    part: int = 0
    parts: int = 1
    token: dict[str, str] = field(default_factory=dict)
    #: "receipt" or "inbound" (see the module doc).
    kind: str = "receipt"
    v: int = ENVELOPE_VERSION

    def to_json(self) -> bytes:
        """The wire form on `dlr.raw.v1` (orjson reads the dataclass; `asdict` would deep-copy)."""
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> RawEnvelope:
        """Parse bytes from `dlr.raw.v1`; raises ValueError/TypeError/KeyError when malformed."""
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("envelope is not a JSON object")
        return cls(**data)
