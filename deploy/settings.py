"""One typed settings object for every process; environment variables `DLR_*`.

Defaults run everything locally on 127.0.0.1. Reading is done once, in `Settings()`,
at process start; the object is frozen and passed down. Nothing here does I/O.
List-valued variables are comma separated (`DLR_TWILIO_SECRETS=tok1,tok2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Providers the ingress knows; each has `ingress/providers/<name>.py` and
#: `schemas/providers/<name>.py`.
PROVIDERS: tuple[str, ...] = (
    "generic",
    "twilio",
    "vonage",
    "plivo",
    "telnyx",
    "sinch",
    "infobip",
    "bird",
    "bandwidth",
    "sns",
    "standard",
)


def split_list(value: str) -> tuple[str, ...]:
    """Comma-separated setting to a tuple, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class Settings(BaseSettings):
    """All configuration. Field name `x` is environment variable `DLR_X`."""

    model_config = SettingsConfigDict(env_prefix="DLR_", frozen=True, extra="ignore")

    # -- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Broker logs, ClickHouse data, dev secrets.")
    cache_dir: Path = Field(Path(".cache"), description="Downloaded Kafka jars.")

    # -- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="External broker(s); when set, no local broker is started."
    )
    kafka_version: str = Field("4.4.0", description="Apache Kafka version fetched from Maven.")
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap_mb: int = Field(512, le=4096)
    topic_partitions: int = Field(8, ge=1, description="Partitions of every dlr.* topic.")
    topic_replication_factor: int = Field(1, ge=1, description="3 on a production cluster.")
    raw_topic: str = "dlr.raw.v1"
    status_topic: str = "dlr.status.v1"
    deadletter_topic: str = "dlr.deadletter.v1"
    actions_topic: str = "dlr.actions.v1"
    suppressions_topic: str = "dlr.suppressions.v1"

    # -- ClickHouse ----------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        None, description="External server, e.g. http://user:pw@host:8123; none started then."
    )
    clickhouse_host: str = "127.0.0.1"
    clickhouse_http_port: int = 8123
    clickhouse_tcp_port: int = 9009
    clickhouse_database: str = "dlr"

    # -- ingress -------------------------------------------------------------------------
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    public_base_url: str | None = Field(
        None, description="Externally visible base URL (scheme://host[:port]) for signed URLs."
    )
    trusted_proxies: str = Field("", description="CIDRs whose X-Forwarded-* headers are trusted.")
    replay_window_s: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(256 * 1024, gt=0)
    produce_timeout_s: float = Field(5.0, gt=0, description="Kafka ack bound before a 503.")
    rate_limit_per_s: float = Field(0.0, ge=0, description="Per-provider requests/s; 0 = off.")
    rate_limit_burst: int = Field(1000, ge=1)
    callback_token_secrets: str = Field("", description="Secrets for per-message callback tokens.")
    secrets_file: Path | None = Field(
        None,
        description="JSON file {provider: {secrets, public_keys, basic, options}} merged "
        "with the DLR_<PROVIDER>_* variables (e.g. a mounted Kubernetes secret).",
    )
    dev_secrets: bool = Field(
        False, description="Local mode: create/reuse development secrets under data_dir."
    )
    log_level: str = "INFO"

    # -- per-provider credentials (comma-separated lists) --------------------------------
    generic_secrets: str = ""
    twilio_secrets: str = ""
    vonage_secrets: str = ""
    vonage_signature_method: Literal["md5", "md5hash", "sha1", "sha256", "sha512"] = "md5hash"
    plivo_secrets: str = ""
    telnyx_public_keys: str = ""
    sinch_secrets: str = ""
    infobip_secrets: str = ""
    infobip_credentials: str = Field("", description="user:password list (Basic auth option).")
    bird_secrets: str = ""
    bandwidth_credentials: str = Field("", description="user:password list for Basic auth.")
    sns_topic_arns: str = Field(
        "", description="Accepted SNS TopicArns; empty = the SNS route refuses everything."
    )
    standard_secrets: str = ""
    standard_public_keys: str = ""
    generic_allow_ips: str = ""
    twilio_allow_ips: str = ""
    vonage_allow_ips: str = ""
    plivo_allow_ips: str = ""
    telnyx_allow_ips: str = ""
    sinch_allow_ips: str = ""
    infobip_allow_ips: str = ""
    bird_allow_ips: str = ""
    bandwidth_allow_ips: str = ""
    sns_allow_ips: str = ""
    standard_allow_ips: str = ""

    # -- stream worker -------------------------------------------------------------------
    worker_id: str = "dlr-streams"
    worker_web_port: int = 6066
    store: str = Field("rocksdb://", description="Faust table store: rocksdb:// or memory://.")
    dedupe_ttl_s: int = Field(7 * 24 * 3600, gt=0, description="How long event keys are kept.")
    fallback_campaigns: str = Field(
        "", description="Campaigns whose failed messages get a `fallback` action."
    )

    # -- sink ----------------------------------------------------------------------------
    sink_group: str = "dlr-sink-clickhouse"
    sink_batch_rows: int = Field(
        20_000,
        ge=1,
        description="Largest batch: reached only when catching up (age closes batches first "
        "at steady rates); 5,000-row batches made the sink path ~30 % slower.",
    )
    sink_batch_ms: int = Field(250, ge=1)
    sink_metrics_port: int = 9108
    sink_metrics_host: str = Field("127.0.0.1", description="0.0.0.0 in containers.")
    pii_mode: Literal["hash", "mask", "clear"] = "hash"
    pii_salt: str = Field("dlr-local-salt", description="Salt for hashed phone numbers.")
    retention_days: int = Field(180, ge=1)
    clear_pii_days: int = Field(30, ge=1)

    @classmethod
    def from_vars(cls, variables: Mapping[str, str]) -> Settings:
        """The settings a child process started with these `DLR_*` variables will read."""
        return cls.model_validate(
            {k[4:].lower(): v for k, v in variables.items() if k.startswith("DLR_")}
        )

    # -- derived -------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers everyone connects to."""
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def clickhouse(self) -> str:
        """The ClickHouse HTTP URL everyone connects to."""
        return self.clickhouse_url or f"http://{self.clickhouse_host}:{self.clickhouse_http_port}"

    def provider_setting(self, provider: str, suffix: str) -> tuple[str, ...]:
        """The list-valued setting `<provider>_<suffix>` (empty when not defined)."""
        value = getattr(self, f"{provider}_{suffix}", "")
        return split_list(value) if isinstance(value, str) else ()
