"""The records of `dlr.sends.v1`: what the sender registered, keyed by message id.

The sender's API (`ingress/api/`) writes two kinds, the stream worker two more; every
record is a JSON object with a `type`:

- `registration` (key = `message_id`): the message as the sender submitted it: recipient,
  sender, campaign, tenant, client_ref, submitted_at, consent `{source, obtained_at,
  reference}` and, for a message the provider split into parts that it reports one by
  one (Vonage), the provider ids of every part. `digest` is the SHA-256 of the
  sender-given content: the same registration sent twice has the same digest (a
  duplicate); another one for the same message id conflicts (the first one wins).
- `part` (key = the part's own message id `<provider>:<part id>`): links a part to its
  message, so the worker that owns the part's key forwards the part's reports to the
  partition of the message. Written by the API with the registration.
- `part_receipt` / `part_state` (key = the message id): written by the worker that owns a
  part's key: a part's raw report (`envelope`), or what the part's reports said before
  its link arrived (`st` state, `r` status fields, `seen` event keys).

The topic has the partitions of `dlr.raw.v1` and the same partitioner, so a message's
registration and its reports reach the same worker, which joins them in its table.
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import orjson

__all__ = [
    "JOINED_FIELDS",
    "PART",
    "PART_RECEIPT",
    "PART_STATE",
    "REGISTRATION",
    "RecordType",
    "digest",
    "joined_info",
    "part_link",
    "split_message_id",
]

RecordType = Literal["registration", "part", "part_receipt", "part_state"]
REGISTRATION: Final = "registration"
PART: Final = "part"
PART_RECEIPT: Final = "part_receipt"
PART_STATE: Final = "part_state"

#: What a registration adds to the canonical events of its message when a report lacks it.
JOINED_FIELDS: tuple[str, ...] = (
    "campaign",
    "tenant",
    "client_ref",
    "submitted_at",
    "consent_source",
    "consent_at",
)

#: Fields of a registration the digest covers (what the sender gave, in a fixed order).
_DIGESTED: tuple[str, ...] = (
    "message_id",
    "recipient",
    "sender",
    "campaign",
    "tenant",
    "client_ref",
    "submitted_at",
    "consent",
    "parts",
)


def split_message_id(message_id: str) -> tuple[str, str]:
    """('vonage', '0B00...') of 'vonage:0B00...'; ValueError without a provider prefix."""
    provider, sep, rest = message_id.partition(":")
    if not sep or not provider or not rest:
        raise ValueError("message_id must be '<provider>:<provider message id>'")
    return provider, rest


def digest(registration: Mapping[str, Any]) -> str:
    """SHA-256 hex of what the sender registered (the same content gives the same digest)."""
    content = {name: registration.get(name) for name in _DIGESTED}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def joined_info(registration: Mapping[str, Any]) -> dict[str, Any]:
    """The registration's contribution to its message's canonical events (non-null only)."""
    consent = registration.get("consent") or {}
    values = {
        "campaign": registration.get("campaign"),
        "tenant": registration.get("tenant"),
        "client_ref": registration.get("client_ref"),
        "submitted_at": registration.get("submitted_at"),
        "consent_source": consent.get("source"),
        "consent_at": consent.get("obtained_at"),
    }
    return {k: v for k, v in values.items() if v is not None}


def part_link(
    message_id: str, parts: Sequence[str], registered_at: str
) -> list[tuple[bytes, bytes]]:
    """The `part` records of a registration: one per part whose id is not the message's.

    `own` is the index of the message's own id among the parts (-1 when it is none of
    them), so a part's reports can be folded before the registration itself arrives.
    """
    provider, own_id = split_message_id(message_id)
    own = parts.index(own_id) if own_id in parts else -1
    out = []
    for index, part in enumerate(parts):
        if index == own:
            continue
        part_id = f"{provider}:{part}"
        value = {
            "type": PART,
            "v": 1,
            "message_id": message_id,
            "part_id": part_id,
            "index": index,
            "parts": len(parts),
            "own": own,
            "registered_at": registered_at,
        }
        out.append((part_id.encode(), orjson.dumps(value)))
    return out
