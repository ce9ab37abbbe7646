"""The settings every service shares: where Kafka and ClickHouse are, topic names, PII.

Each service has its own settings class that extends `CommonSettings`
(`ingress/settings.py`, `streams/settings.py`, `sinks/settings.py`); `deploy/settings.py`
combines them for the `dlr` command line, which reads the environment once and passes
the object down. A field `x` is the environment variable `DLR_X`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "split_list"]


def split_list(value: str) -> tuple[str, ...]:
    """Comma-separated setting to a tuple, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class CommonSettings(BaseSettings):
    """Connection, topic and privacy settings of every service (`DLR_*`)."""

    model_config = SettingsConfigDict(env_prefix="DLR_", frozen=True, extra="ignore")

    # -- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Broker logs, ClickHouse data, dev secrets.")
    log_level: str = "INFO"

    # -- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="External broker(s); when set, no local broker is started."
    )
    kafka_host: str = Field("127.0.0.1", description="The local broker's address.")
    kafka_port: int = Field(9092, description="The local broker's port.")
    topic_partitions: int = Field(8, ge=1, description="Partitions of every dlr.* topic.")
    topic_replication_factor: int = Field(
        1,
        ge=1,
        description="Replicas of every topic the project or faust creates; 3 in production.",
    )
    raw_topic: str = "dlr.raw.v1"
    status_topic: str = "dlr.status.v1"
    deadletter_topic: str = "dlr.deadletter.v1"
    actions_topic: str = "dlr.actions.v1"
    actions_deadletter_topic: str = Field(
        "dlr.actions.deadletter.v1",
        description="Actions `dlr dispatch` could not deliver, and what `retry` re-sent.",
    )
    suppressions_topic: str = "dlr.suppressions.v1"

    # -- ClickHouse ----------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        None, description="External server, e.g. http://user:pw@host:8123; none started then."
    )
    clickhouse_host: str = Field("127.0.0.1", description="The local server's address.")
    clickhouse_http_port: int = Field(8123, description="The local server's HTTP port.")
    clickhouse_database: str = "dlr"

    # -- privacy -------------------------------------------------------------------------
    pii_mode: Literal["hash", "mask", "clear"] = "hash"
    pii_salt: str = Field("dlr-local-salt", description="Salt for hashed phone numbers.")

    @classmethod
    def from_vars(cls, variables: Mapping[str, str]) -> Self:
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
