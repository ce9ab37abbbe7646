"""Event keys: what makes two raw records the same status report.

The provider's event id where it has one (Telnyx `data.id`, Standard Webhooks
`webhook-id`, SNS `MessageId`); otherwise the report's content: provider, message id,
recipient, status, error code, provider timestamp and sequence. A provider retry of the
same callback yields the same key; a new status report yields a new one. The canonical
`event_id` is derived from the key, so re-processing always emits the same event id and
every consumer (the ClickHouse sink included) can stay idempotent.
"""

from __future__ import annotations

import hashlib

from schemas.envelope import RawEnvelope
from schemas.normalized import Normalized


def event_key(envelope: RawEnvelope, report: Normalized) -> str:
    """The dedupe key of one raw record (short hash, stable across processes)."""
    if envelope.event_id:
        basis = f"id|{envelope.provider}|{envelope.event_id}|{envelope.message_id}"
    else:
        ts = report.provider_timestamp.isoformat() if report.provider_timestamp else ""
        basis = "|".join(
            (
                "c",
                envelope.provider,
                envelope.message_id,
                report.recipient or "",
                report.provider_status,
                report.provider_error_code or "",
                ts,
                "" if report.sequence is None else str(report.sequence),
            )
        )
    return hashlib.blake2b(basis.encode(), digest_size=12).hexdigest()


def event_id(message_id: str, key: str) -> str:
    """Deterministic canonical event id (32 hex) of a report of a message."""
    return hashlib.sha256(f"{message_id}|{key}".encode()).hexdigest()[:32]
