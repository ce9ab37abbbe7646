"""Topics the worker reads and writes, with explicit names from settings (never generated)."""

from __future__ import annotations

from streams.app import app, settings

#: Verified raw envelopes from the ingress, keyed by message id.
raw = app.topic(
    settings.raw_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
)
#: Canonical events (schemas/canonical_event.v1.json), keyed by message id.
status = app.topic(
    settings.status_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
)
#: Unparseable, unknown-provider and unmapped records with the reason and the raw envelope.
deadletter = app.topic(
    settings.deadletter_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
)
#: Commands for downstream services: `fallback`, `suppress`.
actions = app.topic(
    settings.actions_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
)
#: Compacted suppression list keyed by salted recipient hash.
suppressions = app.topic(
    settings.suppressions_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
)
