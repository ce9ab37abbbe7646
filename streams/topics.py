"""Topics the worker reads and writes, with explicit names from settings (never generated)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from schemas.settings import CommonSettings

__all__ = ["Topics", "declare"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The worker's topics (raw bytes in and out: the transforms do the encoding)."""

    #: Verified raw envelopes from the ingress, keyed by message id.
    raw: Any
    #: Canonical events (schemas/canonical_event.v1.json), keyed by message id.
    status: Any
    #: Unparseable, unknown-provider and unmapped records with the reason and the envelope.
    deadletter: Any
    #: Commands for downstream services: `fallback`, `suppress`.
    actions: Any
    #: Compacted suppression list keyed by salted recipient hash.
    suppressions: Any
    #: The sender's registrations (schemas/sends.py), keyed by message id like `raw`.
    sends: Any
    #: `raw` and `sends` as one source of the lifecycle agent (co-partitioned).
    sources: Any


def declare(app: faust.App, settings: CommonSettings) -> Topics:
    """Declare the topics on `app` with the names and partitions the settings give."""

    def topic(name: str) -> Any:
        return app.topic(
            name, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
        )

    return Topics(
        raw=topic(settings.raw_topic),
        sends=topic(settings.sends_topic),
        sources=app.topic(
            settings.raw_topic,
            settings.sends_topic,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
        ),
        status=topic(settings.status_topic),
        deadletter=topic(settings.deadletter_topic),
        actions=topic(settings.actions_topic),
        suppressions=topic(settings.suppressions_topic),
    )
