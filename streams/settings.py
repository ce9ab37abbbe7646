"""The stream worker's settings: its group, its web port, its state's lifetime, its actions.

Extends the shared `CommonSettings` (Kafka, topics, PII salt); a field `x` is `DLR_X`.
`dlr worker` builds it once and hands it to `streams.worker.main`; nothing is read at
import time.
"""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommonSettings, split_list

__all__ = ["WorkerSettings"]


class WorkerSettings(CommonSettings):
    """Everything the faust worker reads. Field name `x` is environment variable `DLR_X`."""

    worker_web_port: int = Field(6066, description="faust web server (/healthz, /metrics).")
    dedupe_ttl_s: int = Field(7 * 24 * 3600, gt=0, description="How long event keys are kept.")
    fallback_campaigns: str = Field(
        "", description="Campaigns whose failed messages get a `fallback` action."
    )
    table_standby_replicas: int = Field(
        1,
        ge=0,
        description="Other workers that keep a warm copy of each partition's table (faust "
        "standby replicas): a partition that moves after a worker dies resumes from the copy "
        "instead of replaying its whole changelog. Each copy costs its worker the CPU of "
        "reading that changelog.",
    )
    worker_session_timeout_s: float = Field(
        10.0,
        gt=0,
        le=90,
        description="How long the group waits for a silent worker before its partitions go to "
        "the others (Kafka consumer session timeout; heartbeats every 3 s).",
    )
    fallback_grace_s: float = Field(
        0.0,
        ge=0,
        description="Seconds a message must stay failed before its fallback goes out; a "
        "`delivered` inside cancels it. 0 = at once. Raise it for carriers known to send "
        "`delivered` after `undelivered`.",
    )

    @property
    def fallback_campaign_set(self) -> frozenset[str]:
        """`fallback_campaigns` as a set."""
        return frozenset(split_list(self.fallback_campaigns))
