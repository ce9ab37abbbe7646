"""The ClickHouse sink's settings: its group, batch sizes, retention.

Extends the shared `CommonSettings` (Kafka, ClickHouse, PII mode); a field `x` is
`DLR_X`. `dlr sink` builds it once and passes it to `sinks.service.main_async`.
"""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommonSettings

__all__ = ["SinkSettings"]


class SinkSettings(CommonSettings):
    """Everything the sink reads. Field name `x` is environment variable `DLR_X`."""

    sink_group: str = "dlr-sink-clickhouse"
    sink_batch_rows: int = Field(
        20_000,
        ge=1,
        description="Largest batch: reached only when catching up (age closes batches first "
        "at steady rates); 5,000-row batches made the sink path ~30 % slower.",
    )
    sink_batch_ms: int = Field(
        500,
        ge=1,
        description="Oldest a batch gets: each insert costs ClickHouse planning and a part "
        "per table its views write, whatever its size; 250 ms took 44-46 % of a core at "
        "~880 events/s, 500 ms 27-33 % (bench.e2e).",
    )
    sink_metrics_port: int = 9108
    sink_metrics_host: str = Field("127.0.0.1", description="0.0.0.0 in containers.")
    retention_days: int = Field(180, ge=1, description="Row TTL of the ClickHouse tables.")
    clear_pii_days: int = Field(
        30, ge=1, description="TTL of the clear phone-number columns (DLR_PII_MODE=clear)."
    )
    erasure_audit_days: int = Field(
        2190,
        ge=1,
        description="TTL of the erasure audit (six years: the record that a data subject's "
        "request was carried out outlives the data by far).",
    )
